#!/usr/bin/env node
/** `r1` — the r1ts command line. Commands live in ./commands/<name>.js (see command.ts). */
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import type { Command } from './command.js';
import { R1Error } from '../errors.js';

const commandsDir = join(dirname(fileURLToPath(import.meta.url)), 'commands');

function commandNames(): string[] {
  return readdirSync(commandsDir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).sort();
}

async function load(name: string): Promise<Command> {
  const mod = (await import(pathToFileURL(join(commandsDir, `${name}.js`)).href)) as { default: Command };
  return mod.default;
}

async function main(argv: string[]): Promise<number> {
  const names = commandNames();
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const lines = ['r1 — DeepSeek-R1 in TypeScript', '', 'usage: r1 <command> [options]   (r1 <command> --help for details)', '', 'commands:'];
    for (const n of names) lines.push(`  ${n.padEnd(12)} ${(await load(n)).summary}`);
    console.log(lines.join('\n'));
    return cmd ? 0 : 1;
  }
  if (cmd === '--version' || cmd === '-v') {
    console.log('r1ts 0.1.0');
    return 0;
  }
  if (!names.includes(cmd)) {
    console.error(`r1: unknown command '${cmd}'. Commands: ${names.join(', ')}`);
    return 2;
  }
  const command = await load(cmd);
  if (rest.length === 1 && (rest[0] === '--help' || rest[0] === '-h')) {
    console.log(command.usage);
    return 0;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    if (e instanceof R1Error) console.error(`r1: ${e.message}`);
    else console.error(e);
    process.exitCode = e instanceof R1Error ? 2 : 1;
  },
);
