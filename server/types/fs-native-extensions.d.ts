/** The part of `fs-native-extensions` the server uses (the package ships no types). */
declare module 'fs-native-extensions' {
  /** Takes an advisory lock on the open file `fd` without waiting; false when another holds it. */
  export function tryLock(fd: number, offset?: number, length?: number, options?: { shared?: boolean }): boolean;
  export function unlock(fd: number, offset?: number, length?: number): void;
}
