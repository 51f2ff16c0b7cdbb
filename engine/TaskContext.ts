/**
 * TaskContext lives in the DSL (dsl/TaskContext.ts), so a task defined there can read it; the
 * engine provides it to every task body. Re-exported here for the engine's own imports.
 */
export { noHeaders, TaskContext, type TaskContextShape } from "../dsl/TaskContext.ts"
