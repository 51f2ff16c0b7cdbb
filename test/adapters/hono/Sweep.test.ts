// The sweep route (`POST /sweep`) over a real socket on a real runtime and PostgreSQL, with a
// recording dispatcher that marks what it hands over as dispatched (as the Cloud Tasks
// dispatcher does after CreateTask) or, when told to, loses it (the process died between the
// commit and the dispatch). One call re-dispatches what was lost and reclaims expired leases, at
// most `limit` nodes; the node then runs from its callback. Refusals write and dispatch nothing.
import { serve, type ServerType } from "@hono/node-server"
import { Effect, Layer, Schema } from "effect"
import { Hono } from "hono"
import { randomBytes } from "node:crypto"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { hmacAuthenticator, signatureHeader, signRequest } from "../../../adapters/hono/HmacAuthenticator.ts"
import { type EngineRuntime, taskgraphRoutes } from "../../../adapters/hono/routes.ts"
import { maxSweepLimit } from "../../../adapters/hono/Sweep.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { Dispatcher } from "../../../engine/Dispatcher.ts"
import { Engine } from "../../../engine/Engine.ts"
import { type ReadyRef, WorkflowStore } from "../../../engine/WorkflowStore.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { type TestDatabase, testDatabase } from "../../support/runtime.ts"
import { fingerprint } from "./tables.ts"

const Key = Schema.Struct({ k: Schema.String })
const alpha = task("alpha", { input: Key, output: Schema.String, run: ({ k }) => Effect.succeed(`alpha-${k}`) })
const single = workflow("single", chain(alpha))

const secret = randomBytes(32).toString("hex")
const reported: Array<unknown> = []

/** What the dispatcher was handed, in order; `lose` drops (and does not mark) what it is handed. */
const dispatched: Array<ReadyRef> = []
let lose = false
const recording: Layer.Layer<Dispatcher, never, WorkflowStore> = Layer.effect(
  Dispatcher,
  Effect.gen(function*() {
    const store = yield* WorkflowStore
    return {
      dispatch: (refs) =>
        lose ? Effect.void : Effect.andThen(
          Effect.sync(() => dispatched.push(...refs)),
          store.markDispatched(refs, Date.now()).pipe(Effect.ignore),
        ),
    }
  }),
)

let tdb: TestDatabase
let tg: Runtime
let server: ServerType
let base: string

const listen = (app: Hono): Promise<{ server: ServerType; base: string }> =>
  new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => resolve({ server: s, base: `http://127.0.0.1:${info.port}` }))
  })
const close = (s: ServerType | undefined) => new Promise<void>((resolve) => (s === undefined ? resolve() : s.close(() => resolve())))
const routesOf = (runtime: EngineRuntime) =>
  new Hono().route("/taskgraph", taskgraphRoutes(runtime, { authenticate: hmacAuthenticator({ secret }), onError: (e) => reported.push(e) }))

beforeAll(async () => {
  tdb = await testDatabase()
  // no sweeper of its own: only the route repairs
  tg = await createRuntime({ orm: tdb.orm, workflows: [single], worker: false, dispatcher: recording, sweeper: false })
  ;({ server, base } = await listen(routesOf(tg)))
})

afterAll(async () => {
  await close(server)
  await tg?.close()
  await tdb?.close()
})

beforeEach(async () => {
  await tdb.reset()
  dispatched.length = 0
  lose = false
})

interface Post {
  readonly path?: string
  /** false: no signature; a string: sign that path instead. */
  readonly sign?: false | string
  readonly headers?: Record<string, string>
  readonly body?: string
  readonly to?: string
}

const post = async ({ path = "/taskgraph/sweep", sign = path, headers = {}, body = "", to = base }: Post = {}) => {
  const response = await fetch(`${to}${path}`, {
    method: "POST",
    headers: {
      ...(sign === false ? {} : { [signatureHeader]: signRequest({ secret, method: "POST", path: sign, body }) }),
      ...headers,
    },
    ...(body === "" ? {} : { body }),
  })
  return { status: response.status, json: await response.json() as Record<string, any> }
}

/** Starts `n` runs whose dispatch is lost, and ages their ready nodes past the sweeper's grace. */
const lostStarts = async (n: number) => {
  lose = true
  const runs: Array<string> = []
  for (let i = 0; i < n; i++) runs.push((await tg.start(single, { k: `lost-${i}` })).id)
  lose = false
  await age()
  return runs
}
const age = () => tdb.sql("update taskgraph_nodes set updated_at = updated_at - interval '1 minute' where state = 'ready'")
const node = async (run: string) => (await tdb.sql("select state, claims from taskgraph_nodes where run_id = $1", [run]))[0]

describe("POST /sweep", () => {
  it("re-dispatches a ready node whose dispatch was lost, once, and the node then runs from its callback", async () => {
    lose = true
    const run = (await tg.start(single, { k: "a" })).id
    lose = false
    expect(dispatched).toEqual([])
    expect(await node(run)).toEqual({ state: "ready", claims: 0 })

    // within the grace period the node may still be on its way: left alone
    expect(await post()).toEqual({ status: 200, json: { outcome: "Swept", redispatched: 0, limit: 500, more: false } })
    expect(dispatched).toEqual([])

    await age()
    expect(await post()).toEqual({ status: 200, json: { outcome: "Swept", redispatched: 1, limit: 500, more: false } })
    expect(dispatched).toEqual([expect.objectContaining({ run, node: "0-alpha", attempt: 1, generation: 0 })])
    expect(await node(run)).toEqual({ state: "dispatched", claims: 0 })
    // dispatched now: the next call (the next minute's, or a duplicate delivery) leaves it alone
    await age()
    expect((await post()).json).toMatchObject({ redispatched: 0 })
    expect(dispatched).toHaveLength(1)

    const outcome = await tg.runPromise(Engine.use((engine) => engine.advance({ v: 1, run, node: "0-alpha", attempt: 1 })))
    expect(outcome._tag).toBe("Ran")
    expect(await tg.status(run)).toMatchObject({ status: "succeeded", output: "alpha-a" })
    expect(reported).toEqual([])
  })

  it("reclaims a node whose lease expired (its process died holding it), and dispatches it again under a new generation", async () => {
    const run = (await tg.start(single, { k: "b" })).id
    expect(dispatched).toHaveLength(1)
    const claimed = await tg.runPromise(WorkflowStore.use((store) => store.claim(run, "0-alpha", 1, Date.now())))
    expect(claimed).toMatchObject({ _tag: "Claimed" })
    await tdb.sql("update taskgraph_nodes set lease_until = now() - interval '1 minute' where run_id = $1", [run])
    expect(await node(run)).toEqual({ state: "running", claims: 1 })

    expect((await post()).json).toMatchObject({ outcome: "Swept" })
    expect(await node(run)).toEqual({ state: "ready", claims: 1 })
    await age()
    expect((await post()).json).toMatchObject({ outcome: "Swept", redispatched: 1 })
    expect(dispatched.at(-1)).toMatchObject({ run, node: "0-alpha", attempt: 1, generation: 1 })
  })

  it("re-dispatches at most `limit` nodes a call, saying when there may be more", async () => {
    const runs = await lostStarts(5)
    const passes = []
    for (let i = 0; i < 4; i++) passes.push((await post({ path: "/taskgraph/sweep?limit=2" })).json)
    expect(passes).toEqual([
      { outcome: "Swept", redispatched: 2, limit: 2, more: true },
      { outcome: "Swept", redispatched: 2, limit: 2, more: true },
      { outcome: "Swept", redispatched: 1, limit: 2, more: false },
      { outcome: "Swept", redispatched: 0, limit: 2, more: false },
    ])
    expect(dispatched.map((r) => r.run).sort()).toEqual([...runs].sort())
    expect((await post({ path: `/taskgraph/sweep?limit=${maxSweepLimit}` })).json).toMatchObject({ limit: maxSweepLimit })
  })

  it("refuses a call without a valid signature 401, and a bad limit 400, sweeping nothing", async () => {
    await lostStarts(2)
    const before = await fingerprint(tdb.sql)
    const refusals = [
      await post({ sign: false }),
      await post({ sign: false, headers: { "x-cloudscheduler": "true", "x-cloudscheduler-jobname": "taskgraph--sweep", "user-agent": "Google-Cloud-Scheduler" } }),
      await post({ sign: false, headers: { authorization: "Bearer forged" } }),
      // a signature for another target: the limit is part of what is signed
      await post({ path: "/taskgraph/sweep?limit=1000", sign: "/taskgraph/sweep?limit=1" }),
      await post({ path: "/taskgraph/sweep", sign: "/taskgraph/callback" }),
    ]
    expect(refusals.map((r) => [r.status, r.json.error])).toEqual(refusals.map(() => [401, "unauthenticated"]))
    for (const limit of ["0", "-1", String(maxSweepLimit + 1), "99999999", "abc", "1.5", "", "1e3", " 5"]) {
      const path = `/taskgraph/sweep?limit=${encodeURIComponent(limit)}`
      expect(await post({ path }), limit).toEqual({ status: 400, json: { error: "invalid_limit", message: `limit must be an integer from 1 to ${maxSweepLimit}` } })
    }
    expect(await fingerprint(tdb.sql)).toEqual(before)
    expect(dispatched).toEqual([])
    // and the same call, signed, does sweep
    expect((await post()).json).toMatchObject({ redispatched: 2 })
  })

  it("answers 500 no_dispatcher, told to onError, on a runtime without a dispatcher", async () => {
    const store = await tg.runPromise(WorkflowStore.use(Effect.succeed))
    const bare: EngineRuntime = { runPromise: (effect) => Effect.runPromise(Effect.provideService(effect as Effect.Effect<any, any, WorkflowStore>, WorkflowStore, store)) }
    const served = await listen(routesOf(bare))
    try {
      const answer = await post({ to: served.base })
      expect(answer).toEqual({ status: 500, json: { error: "no_dispatcher", message: expect.stringMatching(/no dispatcher/) } })
      expect(reported.splice(0)).toEqual([expect.objectContaining({ _tag: "NoDispatcher" })])
    } finally {
      await close(served.server)
    }
  })

  it("refuses bad sweep timings when the routes are made", () => {
    expect(() => taskgraphRoutes(tg, { authenticate: hmacAuthenticator({ secret }), sweep: { grace: -1 } })).toThrow(/grace/)
  })
})
