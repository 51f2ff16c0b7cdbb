// The CreateTask request for a ready node: body, headers, token, schedule and deadline.
import { describe, expect, it } from "vitest"
import { callbackBody, dispatchDeadlineMs, taskRequest } from "../../../adapters/cloud-tasks/TaskRequest.ts"
import type { ReadyRef } from "../../../engine/WorkflowStore.ts"

const ref: ReadyRef = {
  run: "0b6c3f5e-8d1a-4c2b-9e7f-1a2b3c4d5e6f",
  node: "s3-summarize",
  attempt: 2,
  generation: 1,
  leaseMs: 90_000,
  dueAt: 1_900_000_000_123,
  queue: null,
}
const target = {
  parent: "projects/p/locations/l/queues/q",
  callbackUrl: "https://worker.example.com/taskgraph/callback",
  oidc: { serviceAccountEmail: "tasks@p.iam.gserviceaccount.com", audience: "https://worker.example.com/taskgraph/callback" },
}

describe("taskRequest", () => {
  it("POSTs the versioned callback as JSON with an OIDC token, at the due time", () => {
    const { request, name, scheduled } = taskRequest(ref, target, ref.dueAt - 10_000)
    expect(scheduled).toEqual({ at: ref.dueAt, hop: false })
    expect(name).toMatch(/^projects\/p\/locations\/l\/queues\/q\/tasks\/[0-9a-f]{12}-0b6c3f5e-8d1a-4c2b-9e7f-1a2b3c4d5e6f-s3-summarize-2$/)
    expect(request.parent).toBe(target.parent)
    const task = request.task!
    expect(task.name).toBe(name)
    expect(task.httpRequest).toMatchObject({
      httpMethod: "POST",
      url: target.callbackUrl,
      headers: { "Content-Type": "application/json" },
      oidcToken: target.oidc,
    })
    expect(JSON.parse(Buffer.from(task.httpRequest!.body as Uint8Array).toString("utf8"))).toEqual({ v: 1, run: ref.run, node: ref.node, attempt: 2 })
    expect(task.scheduleTime).toEqual({ seconds: 1_900_000_000, nanos: 123_000_000 })
    expect(task.dispatchDeadline).toEqual({ seconds: 60, nanos: 0 })
  })

  it("the body is well under a hundred bytes for a UUID run", () => {
    expect(callbackBody(ref).length).toBeLessThan(100)
  })

  it("derives the dispatch deadline from the lease: the task's timeout, within 15 s – 30 min", () => {
    expect(dispatchDeadlineMs(10 * 60_000 + 30_000)).toBe(10 * 60_000) // the default timeout
    expect(dispatchDeadlineMs(60_000)).toBe(30_000) // a structural node
    expect(dispatchDeadlineMs(0)).toBe(15_000)
    expect(dispatchDeadlineMs(2 * 3_600_000)).toBe(30 * 60_000)
  })
})
