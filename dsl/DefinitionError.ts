/**
 * DefinitionError: a workflow definition that can never run (empty group, negative delay, a
 * value that is not a Schema…). Raised when the definition is written, not when it runs.
 */
import { Data } from "effect"

export class DefinitionError extends Data.TaggedError("DefinitionError")<{ readonly message: string }> {}
