/**
 * A CLI command: one file per command under src/cli/commands/<name>.ts, default-exporting a Command.
 * main.ts finds commands by file name, so adding a command never edits a shared registry.
 * Nested commands ("r1 plan pipeline") are handled by the command itself (argv[0] is the subcommand).
 */
export interface Command {
  name: string;
  /** One line for `r1 --help`. */
  summary: string;
  /** Full text for `r1 <name> --help`. */
  usage: string;
  /** Runs with the arguments after the command name; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}
