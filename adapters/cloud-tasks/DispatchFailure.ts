/**
 * DispatchFailure: why Cloud Tasks did not take a callback, classified by the question the
 * dispatcher has to answer: will the same request succeed later?
 *
 * - `transient` (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `ABORTED`, `INTERNAL`,
 *   `UNKNOWN`, `CANCELLED`): the node stays ready and the sweeper dispatches it again.
 * - `permanent` (`NOT_FOUND` for a missing queue, `INVALID_ARGUMENT`, `PERMISSION_DENIED`,
 *   `FAILED_PRECONDITION`, `UNAUTHENTICATED`, …): a configuration problem; it is logged as an
 *   error naming the queue and the task, with a hint, and the node stays ready so that fixing
 *   the configuration is enough for the sweeper to dispatch it.
 *
 * `ALREADY_EXISTS` is not a failure: the callback was queued before (see TaskName).
 *
 * ```ts
 * const failure = classify(error, { queue, task })
 * if (failure.kind === "transient") // leave it to the sweeper
 * ```
 */
import { status } from "@grpc/grpc-js"
import { Data } from "effect"

export type FailureKind = "transient" | "permanent"

export class DispatchFailure extends Data.TaggedError("DispatchFailure")<{
  readonly kind: FailureKind
  /** The gRPC status name, e.g. "UNAVAILABLE". */
  readonly code: string
  /** The queue's full resource name. */
  readonly queue: string
  /** The task's full resource name. */
  readonly task: string
  readonly message: string
  readonly cause?: unknown
}> {}

const transientCodes: ReadonlySet<number> = new Set([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
  status.INTERNAL,
  status.UNKNOWN,
  status.CANCELLED,
])

/** The gRPC status code of an error from a Google client, if it has one. */
export const grpcCode = (error: unknown): number | undefined => {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === "number" && status[code] !== undefined ? code : undefined
}

export const isAlreadyExists = (error: unknown): boolean => grpcCode(error) === status.ALREADY_EXISTS
export const isNotFound = (error: unknown): boolean => grpcCode(error) === status.NOT_FOUND

const hints: Partial<Record<number, string>> = {
  [status.NOT_FOUND]: "does the queue exist? Declare it and run `taskgraph queues sync`",
  [status.INVALID_ARGUMENT]: "check the queue name, the callback URL and the OIDC settings",
  [status.PERMISSION_DENIED]:
    "the caller needs roles/cloudtasks.enqueuer on the queue and roles/iam.serviceAccountUser on the OIDC service account",
  [status.UNAUTHENTICATED]: "the client has no valid credentials",
  [status.FAILED_PRECONDITION]: "is the queue disabled or being deleted?",
}

/** The failure for `error`, raised while creating or deleting `task` in `queue`. */
export const classify = (error: unknown, where: { readonly queue: string; readonly task: string; readonly action?: string }): DispatchFailure => {
  const code = grpcCode(error)
  const name = code === undefined ? "CLIENT_ERROR" : (status[code] as string)
  const kind: FailureKind = code === undefined || !transientCodes.has(code) ? "permanent" : "transient"
  const detail = (error as { details?: unknown } | null)?.details
  const reason = typeof detail === "string" && detail !== "" ? detail : error instanceof Error ? error.message : String(error)
  const hint = code === undefined ? undefined : hints[code]
  const action = where.action ?? "create"
  const message = kind === "transient"
    ? `Cloud Tasks could not ${action} task ${where.task} in queue ${where.queue} for now: ${name}: ${reason}`
    : `Cloud Tasks refused to ${action} task ${where.task} in queue ${where.queue}: ${name}: ${reason}${hint === undefined ? "" : ` (${hint})`}`
  return new DispatchFailure({ kind, code: name, queue: where.queue, task: where.task, message, cause: error })
}
