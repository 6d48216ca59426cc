/**
 * The registry of built-in verifiable tasks: getTask("countdown") and friends.
 * A task file exports one Task made with defineTask (tasks/task.ts); add it to TASKS to register it.
 */
import { UsageError } from '../errors.js';
import type { Task } from './task.js';
import { arithmetic } from './arithmetic.js';
import { countdown } from './countdown.js';
import { linear } from './linear.js';

export * from './task.js';
export { arithmetic, makeArithmeticTask, type ArithmeticData, type ArithmeticOp, type ArithmeticTaskOptions } from './arithmetic.js';
export { countdown, parseExpr, evalExpr, formatExpr, solveCountdown, checkCountdown, type CountdownData, type Expr } from './countdown.js';
export { linear, solveLinear, equationText, type LinearData } from './linear.js';

/** Built-in tasks, by name. */
export const TASKS: ReadonlyMap<string, Task> = new Map([arithmetic, countdown, linear].map((t) => [t.name, t] as const));

export function taskNames(): string[] {
  return [...TASKS.keys()];
}

/** The task of that name; a UsageError listing the known names otherwise. */
export function getTask(name: string): Task {
  const t = TASKS.get(name);
  if (!t) throw new UsageError(`unknown task ${JSON.stringify(name)}; known tasks: ${taskNames().join(', ')}`);
  return t;
}
