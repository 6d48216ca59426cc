/** Test helpers: paths into the source tree (tests run from dist/). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null;
/** The package root (the folder holding package.json). */
export function repoRoot(): string {
  if (root) return root;
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('package root not found');
    d = up;
  }
  root = d;
  return d;
}
export function repoPath(...parts: string[]): string {
  return join(repoRoot(), ...parts);
}
