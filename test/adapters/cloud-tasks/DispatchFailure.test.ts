// Classifying Cloud Tasks errors: transient ones are left to the sweeper, permanent ones are
// reported with the queue, the task and a hint.
import { status } from "@grpc/grpc-js"
import { describe, expect, it } from "vitest"
import { classify, isAlreadyExists } from "../../../adapters/cloud-tasks/DispatchFailure.ts"

const where = { queue: "projects/p/locations/l/queues/q", task: "projects/p/locations/l/queues/q/tasks/t" }
const grpcError = (code: status, details: string) => Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details })

describe("classify", () => {
  it.each(["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL"] as const)("%s is transient", (code) => {
    const failure = classify(grpcError(status[code], "try later"), where)
    expect(failure).toMatchObject({ _tag: "DispatchFailure", kind: "transient", code, queue: where.queue, task: where.task })
  })

  it.each(["NOT_FOUND", "INVALID_ARGUMENT", "PERMISSION_DENIED", "FAILED_PRECONDITION"] as const)("%s is permanent", (code) => {
    expect(classify(grpcError(status[code], "no"), where).kind).toBe("permanent")
  })

  it("a missing queue names the queue, the task and what to do", () => {
    const failure = classify(grpcError(status.NOT_FOUND, `Queue ${where.queue} does not exist.`), where)
    expect(failure.message).toContain(where.queue)
    expect(failure.message).toContain(where.task)
    expect(failure.message).toContain("taskgraph queues sync")
  })

  it("an error without a gRPC status is permanent", () => {
    expect(classify(new TypeError("bad request object"), where)).toMatchObject({ kind: "permanent", code: "CLIENT_ERROR" })
  })

  it("ALREADY_EXISTS is recognised (it is success, not a failure)", () => {
    expect(isAlreadyExists(grpcError(status.ALREADY_EXISTS, "exists"))).toBe(true)
    expect(isAlreadyExists(grpcError(status.NOT_FOUND, "gone"))).toBe(false)
  })
})
