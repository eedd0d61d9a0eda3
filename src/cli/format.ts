/** Wording shared by the CLI's human-readable output. */

/** `1 blob`, `2 blobs`, `0 blobs`; irregular plurals are given: `count(n, 'repository', 'repositories')`. */
export function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}
