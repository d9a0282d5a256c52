/** A plain-text table: a header row, a rule, and rows, numbers right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows].map((row) => row.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: readonly string[], numeric: readonly boolean[]): string =>
    row.map((cell, i) => (numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  const numericOf = (row: readonly (string | number)[]): boolean[] => row.map((cell) => typeof cell === 'number');
  return [
    line(cells[0]!, header.map(() => false)),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map((row, i) => line(cells[i + 1]!, numericOf(row))),
  ].join('\n');
}
