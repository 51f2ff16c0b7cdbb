/**
 * ResourceNames: the shapes of Cloud Tasks resource names, checked the way the service checks
 * them, and the short ids the delivery loop puts in `X-CloudTasks-QueueName` / `-TaskName`.
 *
 *     projects/PROJECT_ID/locations/LOCATION_ID                       (a location: queues' parent)
 *     projects/PROJECT_ID/locations/LOCATION_ID/queues/QUEUE_ID       QUEUE_ID: [A-Za-z0-9-]{1,100}
 *     …/queues/QUEUE_ID/tasks/TASK_ID                                 TASK_ID:  [A-Za-z0-9_-]{1,500}
 *
 * ```ts
 * parseTaskName("projects/p/locations/l/queues/q/tasks/t-1")
 * // { ok: true, value: { queue: "projects/p/locations/l/queues/q", taskId: "t-1" } }
 * ```
 */
import { fail, type RpcResult, succeed } from "../shared/RpcFailure.ts"

const project = "[A-Za-z0-9\\-:.]{1,100}"
const location = "[A-Za-z0-9\\-]{1,100}"
const queueId = "[A-Za-z0-9\\-]{1,100}"
const taskId = "[A-Za-z0-9_\\-]{1,500}"

const locationPattern = new RegExp(`^projects/${project}/locations/${location}$`)
const queuePattern = new RegExp(`^(projects/${project}/locations/${location})/queues/(${queueId})$`)
const taskPattern = new RegExp(`^(projects/${project}/locations/${location}/queues/${queueId})/tasks/(${taskId})$`)

export interface QueueName {
  readonly name: string
  /** `projects/P/locations/L`. */
  readonly location: string
  readonly queueId: string
}

export interface TaskName {
  readonly name: string
  /** The full queue name. */
  readonly queue: string
  readonly taskId: string
}

export const parseLocation = (name: string): RpcResult<string> =>
  locationPattern.test(name)
    ? succeed(name)
    : fail("INVALID_ARGUMENT", `Invalid resource field value in the request: "${name}" is not a location name (projects/PROJECT_ID/locations/LOCATION_ID).`)

export const parseQueueName = (name: string): RpcResult<QueueName> => {
  const match = queuePattern.exec(name)
  return match?.[1] !== undefined && match[2] !== undefined
    ? succeed({ name, location: match[1], queueId: match[2] })
    : fail(
        "INVALID_ARGUMENT",
        `Invalid resource field value in the request: "${name}" is not a queue name (projects/PROJECT_ID/locations/LOCATION_ID/queues/QUEUE_ID, QUEUE_ID of letters, digits and hyphens, at most 100).`,
      )
}

export const parseTaskName = (name: string): RpcResult<TaskName> => {
  const match = taskPattern.exec(name)
  return match?.[1] !== undefined && match[2] !== undefined
    ? succeed({ name, queue: match[1], taskId: match[2] })
    : fail(
        "INVALID_ARGUMENT",
        `Invalid resource field value in the request: "${name}" is not a task name (…/queues/QUEUE_ID/tasks/TASK_ID, TASK_ID of letters, digits, hyphens and underscores, at most 500).`,
      )
}
