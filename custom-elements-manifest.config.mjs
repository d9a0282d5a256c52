/**
 * The custom-elements manifest (`dist/custom-elements.json`, which package.json `customElements`
 * points to), generated from the JSDoc of the elements and their events by
 * `@custom-elements-manifest/analyzer` (`cem analyze`, the last step of `npm run build`).
 */
export default {
  globs: ['src/elements/**/*.ts'],
  outdir: 'dist',
  litelement: true,
  // package.json already names the manifest; the analyzer must not rewrite it on every build.
  packagejson: false,
  plugins: [
    {
      // `#private` members are not part of any API; the analyzer lists them as `privacy: private`.
      name: 'drop-hash-private-members',
      packageLinkPhase({ customElementsManifest }) {
        for (const mod of customElementsManifest.modules ?? []) {
          for (const declaration of mod.declarations ?? []) {
            if (declaration.members) {
              declaration.members = declaration.members.filter((member) => !member.name.startsWith('#'));
            }
          }
        }
      },
    },
  ],
};
