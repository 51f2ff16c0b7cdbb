/**
 * Tracing through effect/observability's OTLP exporter (JSON over HTTP) to a collector this test
 * runs on 127.0.0.1, keeping what it receives in memory. A three-step run whose steps are split
 * between two worker processes (queues "a" and "b") is one trace: the start is a span, every step
 * is a span whose parent is the start, with the run, node, task and attempt as attributes, and a
 * body's own span is a child of its step. The run stores its start's `traceparent`. Without a
 * tracer nothing is added to the run.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createRuntime } from "../../src/Runtime.ts"
import { traced, tracing } from "../fixtures/tracing/workflow.ts"
import { testDatabase, type TestDatabase } from "../support/runtime.ts"

interface ReceivedSpan {
  readonly service: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly attributes: Record<string, unknown>
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number }
const plainValue = (value: OtlpValue): unknown =>
  value.stringValue ?? (value.intValue === undefined ? undefined : Number(value.intValue)) ?? value.boolValue ?? value.doubleValue
const attributesOf = (list: ReadonlyArray<{ key: string; value: OtlpValue }> = []) => Object.fromEntries(list.map((a) => [a.key, plainValue(a.value)]))

const spans: Array<ReceivedSpan> = []
let collector: Server
let collectorUrl: string
let db: TestDatabase

beforeAll(async () => {
  db = await testDatabase()
  collector = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        resourceSpans?: Array<{
          resource?: { attributes?: Array<{ key: string; value: OtlpValue }> }
          scopeSpans?: Array<{ spans?: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: Array<{ key: string; value: OtlpValue }> }> }>
        }>
      }
      for (const resource of body.resourceSpans ?? []) {
        const service = String(attributesOf(resource.resource?.attributes)["service.name"])
        for (const scope of resource.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push({
              service,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId === "" ? undefined : span.parentSpanId,
              name: span.name,
              attributes: attributesOf(span.attributes),
            })
          }
        }
      }
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve))
  collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`
})
afterAll(async () => {
  await new Promise<void>((resolve) => collector?.close(() => resolve()))
  await db?.close()
})

const root = fileURLToPath(new URL("../..", import.meta.url))
const workerProgram = fileURLToPath(new URL("../fixtures/tracing/worker.ts", import.meta.url))

const startWorker = (service: string, queue: string) => {
  const env: NodeJS.ProcessEnv = { ...process.env, METADATA_SERVER_DETECTION: "none" }
  delete env.DATABASE_URL
  const child: ChildProcess = spawn(process.execPath, ["--conditions=taskgraph-source", workerProgram, db.url, collectorUrl, service, queue], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  })
  let output = ""
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  const ready = new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (output.includes("ready")) {
        clearInterval(check)
        resolve()
      }
    }, 20)
    exited.then(() => {
      clearInterval(check)
      reject(new Error(`worker ${service} exited before it was ready:\n${output}`))
    })
  })
  return { child, ready, exited, output: () => output }
}

const until = async (what: string, check: () => boolean, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe("one trace per run", () => {
  it("a three-step run split between two worker processes: the start and three step spans in one trace", async () => {
    const a = startWorker("worker-a", "a")
    const b = startWorker("worker-b", "b")
    try {
      await Promise.all([a.ready, b.ready])
      const tg = await createRuntime({ orm: db.orm, workflows: [traced], worker: false, tracing: tracing(collectorUrl, "starter") })
      let run: string
      try {
        const handle = await tg.start(traced, 1)
        run = handle.id
        expect(await handle.result({ timeout: 30 })).toBe(4)
      } finally {
        await tg.close() // flushes the starter's spans
      }
      a.child.kill("SIGTERM")
      b.child.kill("SIGTERM")
      expect(await a.exited, a.output()).toBe(0)
      expect(await b.exited, b.output()).toBe(0)

      const start = spans.find((s) => s.name === "taskgraph.start traced-run")
      expect(start, JSON.stringify(spans.map((s) => s.name))).toBeDefined()
      expect(start).toMatchObject({ service: "starter", attributes: { "taskgraph.workflow": "traced-run", "taskgraph.run": run } })
      const steps = spans.filter((s) => s.name.startsWith("taskgraph.step") && s.attributes["taskgraph.run"] === run)
      expect(steps.map((s) => [s.name, s.service]).sort()).toEqual([
        ["taskgraph.step 0-tracedOne", "worker-a"],
        ["taskgraph.step 1-tracedTwo", "worker-b"],
        ["taskgraph.step 2-tracedThree", "worker-a"],
      ])
      for (const step of steps) {
        expect(step.traceId).toBe(start!.traceId)
        expect(step.parentSpanId).toBe(start!.spanId)
        expect(step.attributes).toMatchObject({ "taskgraph.workflow": "traced-run", "taskgraph.attempt": 1, "taskgraph.outcome": "Ran" })
        expect(String(step.attributes["taskgraph.task"])).toMatch(/^traced(One|Two|Three)$/)
        expect(String(step.attributes["taskgraph.node"])).toBe(step.name.slice("taskgraph.step ".length))
      }
      // a body's own span is a child of its step's
      for (const step of steps) {
        const body = spans.find((s) => s.parentSpanId === step.spanId)
        expect(body?.name).toBe(`${step.attributes["taskgraph.task"]} body`)
        expect(body?.traceId).toBe(start!.traceId)
      }
      const [row] = await db.sql<{ headers: Record<string, string> }>("select headers from taskgraph_runs where id = $1", [run])
      expect(row!.headers.traceparent).toBe(`00-${start!.traceId}-${start!.spanId}-01`)
    } finally {
      for (const worker of [a, b]) if (worker.child.exitCode === null) worker.child.kill("SIGKILL")
    }
  }, 60_000)

  it("a start inside a request's trace is a child of it; a runtime without a tracer adds nothing", async () => {
    const parent = "00-11111111111111111111111111111111-2222222222222222-01"
    const tg = await createRuntime({ orm: db.orm, workflows: [traced], worker: false, tracing: tracing(collectorUrl, "starter-2") })
    const handle = await tg.start(traced, 1, { headers: { traceparent: parent } })
    await tg.close()
    await until("the start span", () => spans.some((s) => s.service === "starter-2"))
    const start = spans.find((s) => s.service === "starter-2")!
    expect(start.traceId).toBe("11111111111111111111111111111111")
    expect(start.parentSpanId).toBe("2222222222222222")
    const [row] = await db.sql<{ headers: Record<string, string> }>("select headers from taskgraph_runs where id = $1", [handle.id])
    expect(row!.headers).toEqual({ traceparent: `00-11111111111111111111111111111111-${start.spanId}-01` })

    const plain = await createRuntime({ orm: db.orm, workflows: [traced], worker: false })
    const untraced = await plain.start(traced, 1)
    await plain.close()
    const [none] = await db.sql<{ headers: unknown }>("select headers from taskgraph_runs where id = $1", [untraced.id])
    expect(none!.headers).toBeNull()
  })
})
