/**
 * Benchmark dispatcher: `npm run bench -- <name> [args]` runs `node dist/bench/run.js <name> [args]`,
 * which imports ./<name>.js from this folder and calls its default export `async (argv) => void`.
 * A new benchmark is a new file here; this dispatcher never needs editing. With no name (or --help)
 * it lists the benchmarks it can find.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UsageError } from '../src/errors.js';

type BenchMain = (argv: string[]) => Promise<void> | void;

const here = dirname(fileURLToPath(import.meta.url));

/** Benchmark names: the compiled .js files next to this one (not this dispatcher, not *-common.js shared code, not helper folders). */
export function availableBenches(dir = here): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.js') && e.name !== 'run.js' && !e.name.endsWith('-common.js'))
    .map((e) => e.name.slice(0, -3))
    .sort();
}

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const names = availableBenches();
  if (!name || name === '--help' || name === '-h') {
    console.log('usage: npm run bench -- <name> [--json] [bench options]\n\nbenchmarks:');
    for (const n of names) console.log(`  ${n}`);
    return;
  }
  // Names are plain file stems: refuse paths so the import cannot leave this folder.
  if (!/^[A-Za-z0-9_-]+$/.test(name) || !names.includes(name)) {
    throw new UsageError(`bench: unknown benchmark '${name}' (available: ${names.join(', ') || 'none'})`);
  }
  const mod = (await import(pathToFileURL(join(here, `${name}.js`)).href)) as { default?: unknown };
  if (typeof mod.default !== 'function') {
    throw new UsageError(`bench: ${name}.js has no default export function (argv: string[]) => Promise<void>`);
  }
  await (mod.default as BenchMain)(rest);
}

// Run only when executed directly (tests may import availableBenches).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = e instanceof UsageError ? 2 : 1;
  });
}
