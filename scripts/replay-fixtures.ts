// replay-fixtures: writes a replay fixture, the stored state of runs stopped half way, which
// test/replay/Replay.test.ts loads into a fresh database and finishes with the engine of the
// day. A change that would strand runs stored by this version (a renamed node kind or state, a
// column it reads differently, a migration that breaks old rows) fails that test.
//
//   node --conditions=taskgraph-source scripts/replay-fixtures.ts [--name v2] [--commit SHA]
//
// On an embedded PostgreSQL, migrated, it starts the workflows of test/fixtures/replay/workflows.ts
// and moves each one to where it must stop by calling the engine step by step (`advance`, as a
// callback would), on a clock frozen at a fixed past instant so every due time is past when the
// fixture is replayed: a chain between steps (its next step ready, dispatched to a queue, or
// running under a dead worker's lease), a group and a map with partial joins, an iteration with
// one shard done and one checkpointed, a delay and a retry's backoff pending, a failing run with
// its onError handler ready, a node parked (written by a second engine that lacks its task), a
// run revoked from a node on with its onRevoke hook ready, a run started with an idempotency key
// and one deduplicated. Then it dumps every `taskgraph_*` table into test/fixtures/replay/<name>/
// (see format.ts there) with a README.
//
// Fixtures are append-only: this refuses a folder that exists. A new version of the library adds a
// fixture under a new name (the next vN by default); the ones checked in are never rewritten.
// --commit names the commit the code came from when the script runs outside a git checkout
// (from `git archive`, say, to write a fixture from committed code only).
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdir, readFile, writeFile } from "node:fs/promises"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Clock, Effect, Layer, ManagedRuntime } from "effect"
import pg from "pg"
import { startEmbeddedPostgres } from "../adapters/postgres/EmbeddedPostgres.ts"
import { migrate, migrationsTable } from "../adapters/postgres/migrate.ts"
import { MikroOrmRowSource } from "../adapters/postgres/MikroOrmRowSource.ts"
import { PostgresStore } from "../adapters/postgres/PostgresStore.ts"
import type { AnyWorkflow, StartOptions } from "../dsl/index.ts"
import { CallbackVersion } from "../engine/Callback.ts"
import { Dispatcher } from "../engine/Dispatcher.ts"
import { Engine, EngineConfig, type EngineConfigShape } from "../engine/Engine.ts"
import type { Outcome } from "../engine/Outcome.ts"
import { Registry } from "../engine/Registry.ts"
import { TaskServices } from "../engine/TaskServices.ts"
import { type ReadyRef, WorkflowStore } from "../engine/WorkflowStore.ts"
import { dumpTable, type FixtureCase, fixtureFolders, fixturesRoot, type Manifest, tableJson, taskgraphTables } from "../test/fixtures/replay/format.ts"
import * as app from "../test/fixtures/replay/workflows.ts"

const root = fileURLToPath(new URL("..", import.meta.url))
const { values: args } = parseArgs({ options: { name: { type: "string" }, commit: { type: "string" } } })
const existing = existsSync(fixturesRoot) ? fixtureFolders() : []
const name = args.name ?? `v${existing.length === 0 ? 1 : Math.max(...existing.map((f) => Number(f.replace(/^v/, "")) || 0)) + 1}`
if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`--name ${name}: use letters, digits and . _ -`)
const out = path.join(fixturesRoot, name)
if (existsSync(out)) {
  throw new Error(`${path.relative(root, out)} exists: fixtures are append-only, never regenerated in place; write a new one (--name)`)
}

/** The writer's clock starts here: every due time the fixture holds (a day at most after it) is past when it is replayed. */
const clockStart = Date.parse("2026-11-29T00:00:00.000Z")
if (clockStart + 2 * 86_400_000 > Date.now()) throw new Error("the fixed clock start must lie at least two days in the past")
let clockMs = clockStart
/** Each step one second after the one before, so the rows' timestamps keep their order. */
const tick = () => (clockMs += 1000)
const frozen = (base: Clock.Clock): Clock.Clock => ({
  currentTimeMillisUnsafe: () => clockMs,
  currentTimeMillis: Effect.sync(() => clockMs),
  currentTimeNanosUnsafe: () => BigInt(clockMs) * 1_000_000n,
  currentTimeNanos: Effect.sync(() => BigInt(clockMs) * 1_000_000n),
  monotonicTimeNanosUnsafe: () => base.monotonicTimeNanosUnsafe(),
  monotonicTimeNanos: base.monotonicTimeNanos,
  // timeouts and the revoke watcher sleep in real time
  sleep: (duration) => base.sleep(duration),
})

const server = await startEmbeddedPostgres({ database: "replay" })
const client = new pg.Client({ connectionString: server.url })
let orm: MikroORM | undefined
const runtimes: Array<ManagedRuntime.ManagedRuntime<any, any>> = []
try {
  await migrate(server.url)
  await client.connect()
  for (const statement of app.applicationSchema) await client.query(statement)
  orm = await MikroORM.init(defineConfig({
    clientUrl: server.url,
    entities: [app.ReplayItem],
    pool: { min: 0, max: 10 },
    ensureDatabase: false,
    debug: false,
  }))

  /** What the engines handed to their dispatcher, by run and node: refs to mark as dispatched. */
  const handedOver = new Map<string, ReadyRef>()
  const recording = Layer.succeed(Dispatcher, {
    dispatch: (refs) =>
      Effect.sync(() => {
        for (const ref of refs) handedOver.set(`${ref.run}/${ref.node}`, ref)
      }),
  })
  const engineFor = (workflows: ReadonlyArray<AnyWorkflow>, config?: EngineConfigShape) => {
    const base = Layer.mergeAll(
      PostgresStore.layer(orm!, { notifyChannel: null }),
      Registry.layer(workflows),
      TaskServices.empty,
      recording,
      MikroOrmRowSource.layer(orm!),
    )
    const engine = Layer.provideMerge(Layer.orDie(Engine.layer), base)
    const layer = config === undefined ? engine : Layer.provide(engine, Layer.succeed(EngineConfig, config))
    const runtime = ManagedRuntime.make(layer)
    runtimes.push(runtime)
    return runtime
  }
  type Services = Engine | WorkflowStore
  type EngineRuntime = ManagedRuntime.ManagedRuntime<Services, never>
  /** Every workflow registered: the deploy that wrote the runs. */
  const full: EngineRuntime = engineFor(app.replayWorkflows)
  /** A process without the parked workflow's task: parks its node at once (parkAfter 0). */
  const lacking: EngineRuntime = engineFor(app.replayWorkflows.filter((wf) => wf !== app.parkedWorkflow), { revokeCheck: 1, parkAfter: 0 })

  /** Runs `effect` one tick later on the frozen clock. */
  const at = <A, E>(effect: Effect.Effect<A, E, Services>, runtime: EngineRuntime = full): Promise<A> => {
    tick()
    return runtime.runPromise(Effect.gen(function*() {
      const base = yield* Clock.Clock
      return yield* Effect.provideService(effect, Clock.Clock, frozen(base))
    }))
  }
  const cases: Record<string, FixtureCase> = {}
  const start = async (label: string, wf: AnyWorkflow, input: unknown, note: string, options: StartOptions = {}) => {
    const ref = await at(Engine.use((engine) => engine.start(wf, input, options)))
    cases[label] = { workflow: wf.name, run: ref.id, input, note }
    return ref.id
  }
  const attemptOf = async (run: string, node: string) => {
    const row = (await at(WorkflowStore.use((store) => store.getNodes(run)))).find((n) => n.id === node)
    if (row === undefined) throw new Error(`run ${run} has no node ${node}`)
    return row.attempt
  }
  /** Delivers the node's callback, as a queue would, and checks what the engine answered. */
  const advance = async (run: string, node: string, expected: Outcome["_tag"], runtime: EngineRuntime = full): Promise<Outcome> => {
    const attempt = await attemptOf(run, node)
    const outcome = await at(Engine.use((engine) => engine.advance({ v: CallbackVersion, run, node, attempt })), runtime)
    if (outcome._tag !== expected) throw new Error(`${run} ${node}: expected ${expected}, the engine answered ${JSON.stringify(outcome)}`)
    return outcome
  }
  const steps = async (run: string, nodes: ReadonlyArray<string>) => {
    for (const node of nodes) await advance(run, node, "Ran")
  }

  // a chain between its steps: the second ready (for a worker; also on a named queue), dispatched
  // (a queued callback), running under the lease of a worker that died, not started yet, and one done
  const ready = await start("chain-ready", app.chainWorkflow, 1, "the second step ready")
  await steps(ready, ["0-replay.inc"])
  const dispatched = await start("chain-dispatched", app.chainWorkflow, 2, "the second step dispatched: its callback is queued")
  await steps(dispatched, ["0-replay.inc"])
  const ref = handedOver.get(`${dispatched}/1-replay.double`)
  if (ref === undefined || (await at(WorkflowStore.use((store) => store.markDispatched([ref], clockMs)))) !== 1) {
    throw new Error("the chain's second step could not be marked dispatched")
  }
  const running = await start("chain-running", app.chainWorkflow, 3, "the second step running under a dead worker's lease (it expired long ago)")
  await steps(running, ["0-replay.inc"])
  const claimed = await at(Engine.use((engine) => WorkflowStore.use((store) => store.claim(running, "1-replay.double", 1, clockMs, engine.scope))))
  if (claimed._tag !== "Claimed") throw new Error(`the chain's second step could not be claimed: ${JSON.stringify(claimed)}`)
  const queued = await start("chain-queued", app.chainWorkflow, 5, "the second step ready on the run's queue (start({ queue }))", { queue: "replay-queue" })
  await steps(queued, ["0-replay.inc"])
  await start("chain-later", app.chainWorkflow, 4, "started with a one-day delay: its first step not due yet", { delay: "1 day" })
  const done = await start("chain-done", app.chainWorkflow, 10, "finished: succeeded before the fixture was written")
  await steps(done, ["0-replay.inc", "1-replay.double", "2-replay.inc"])

  // a group whose join holds members 0 and 2; member 1 is a chain stopped between its steps
  const group = await start("group-partial", app.groupWorkflow, 1, "the join holds 2 of 3 members; the middle member's second step is ready")
  await steps(group, ["0-replay.inc", "1.0.0-replay.double", "1.1.0-replay.inc", "1.2.0-replay.neg"])

  // a map over [1, 2, 3]: element 0 collected, element 1 with its group half joined, element 2 not started
  const map = await start("map-partial", app.mapWorkflow, 3, "the collect holds 1 of 3 elements; element 1's join holds 1 of 2 members; element 2 not started")
  await steps(map, ["0-replay.range", "1-map", "1.m.0-replay.double#0", "1.m.1.0.0-replay.inc#0", "1.m.1.1.0-replay.neg#0", "1.m.1-group#0"])
  await steps(map, ["1.m.0-replay.double#1", "1.m.1.0.0-replay.inc#1"])

  // an iteration over 12 rows in 2 shards of two-row pages: shard 0 walked, shard 1 checkpointed after one page
  const iterate = await start("iterate-partial", app.iterateWorkflow, 1, "shard 0 done, shard 1 checkpointed after its first page; the gather holds 1 of 2")
  await steps(iterate, ["0-replay.from", "1-iterate"])
  const shards = (await at(WorkflowStore.use((store) => store.getNodes(iterate)))).filter((n) => n.kind === "shard")
  if (shards.length !== 2) throw new Error(`the iteration planned ${shards.length} shards, not 2`)
  for (let tries = 0; ; tries++) {
    const outcome = await advance(iterate, "1.s-shard#0", tries < 3 ? "Continued" : "Ran")
    if (outcome._tag === "Ran") break
  }
  await advance(iterate, "1.s-shard#1", "Continued")

  const delay = await start("delay-pending", app.delayWorkflow, 5, "the delay's hour not over when written")
  await steps(delay, ["0-replay.inc"])

  const retry = await start("retry-scheduled", app.retryWorkflow, 1, "the first try failed; the second is due ten minutes later")
  await steps(retry, ["0-replay.inc"])
  await advance(retry, "1-replay.flaky", "RetryScheduled")

  const failing = await start("onerror-pending", app.onErrorWorkflow, 1, "a step failed for good: the run is failing, its onError handler ready")
  await steps(failing, ["0-replay.inc"])
  await advance(failing, "1-replay.doomed", "Failed")

  const parked = await start("parked", app.parkedWorkflow, 1, "the second step parked: no process had its task")
  await steps(parked, ["0-replay.inc"])
  await advance(parked, "1-replay.ghost", "Parked", lacking)

  const revoked = await start("revoked-downstream", app.revokedWorkflow, 1, "revoked from its second step on: the run is revoked, its onRevoke hook ready")
  await steps(revoked, ["0-replay.inc"])
  const revocation = await at(Engine.use((engine) => engine.revoke(revoked, { node: "1-replay.double", reason: "replay fixture" })))
  if (revocation._tag !== "Revoked" || !revocation.runRevoked) throw new Error(`the revoke did not revoke the run: ${JSON.stringify(revocation)}`)

  const keyed = await start("idempotency-key", app.idempotentWorkflow, 1, "started with idempotency key replay-order-1", { idempotencyKey: "replay-order-1" })
  await steps(keyed, ["0-replay.inc"])

  const dedup = await start("deduplicated", app.dedupWorkflow, 7, "a deduplicated run holding its key (window: an hour after it ends)")
  await steps(dedup, ["0-replay.inc"])

  // a worker that announced itself and died: its entry expired long ago
  await at(Engine.use((engine) =>
    WorkflowStore.use((store) =>
      store.announce({ id: crypto.randomUUID(), tasks: engine.scope.tasks, iterations: engine.scope.iterations, queues: null, expiresAt: clockMs + 30_000 }, clockMs)
    )
  ))

  // the dump: every taskgraph_* table, and the schema version
  const tables = await taskgraphTables(client, migrationsTable)
  const ledger = await dumpTable(client, migrationsTable)
  const pkg = JSON.parse(await readFile(path.join(root, "package.json"), "utf8")) as { name: string; version: string }
  const git = (...gitArgs: Array<string>) => execFileSync("git", gitArgs, { cwd: root, encoding: "utf8" }).trim()
  const source = args.commit !== undefined
    ? { commit: args.commit, dirty: false }
    : { commit: git("rev-parse", "HEAD"), dirty: git("status", "--porcelain", "--", "dsl", "engine", "adapters", "src") !== "" }
  const readme = `Replay fixture ${name}, written by ${pkg.name} ${pkg.version} (library code at ${source.commit}${source.dirty ? ", with uncommitted changes" : ""}) ` +
    "with scripts/replay-fixtures.ts. Append-only: never regenerated in place; a new version adds a new folder. " +
    "The workflows that wrote it (test/fixtures/replay/workflows.ts) never change."
  const manifest: Manifest = {
    readme,
    fixture: name,
    writtenBy: {
      package: `${pkg.name}@${pkg.version}`,
      commit: source.commit,
      dirty: source.dirty,
      at: new Date().toISOString(),
      postgres: (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v,
    },
    clock: new Date(clockStart).toISOString(),
    schema: { migrationsTable, migrations: ledger.map((row) => String(row.name)) },
    tables,
    cases,
  }
  await mkdir(out, { recursive: true })
  await writeFile(path.join(out, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`)
  await writeFile(path.join(out, `${migrationsTable}.json`), tableJson(ledger))
  const counts: Array<string> = []
  for (const table of tables) {
    const rows = await dumpTable(client, table)
    counts.push(`${table}: ${rows.length}`)
    await writeFile(path.join(out, `${table}.json`), tableJson(rows))
  }
  await writeFile(path.join(out, "README.md"), readmeText(manifest))
  console.log(`${path.relative(root, out)}: ${Object.keys(cases).length} runs; ${counts.join(", ")}`)
} finally {
  for (const runtime of runtimes) await runtime.dispose().catch(() => undefined)
  await orm?.close().catch(() => undefined)
  await client.end().catch(() => undefined)
  await server.stop()
}

function readmeText(manifest: Manifest): string {
  const cases = Object.entries(manifest.cases).map(([label, c]) => `| ${label} | ${c.workflow} | ${JSON.stringify(c.input)} | ${c.note} |`)
  return `# Replay fixture ${manifest.fixture}

Written by ${manifest.writtenBy.package}, its library code (dsl, engine, adapters, src) at commit
${manifest.writtenBy.commit}${manifest.writtenBy.dirty ? " with uncommitted changes" : ""}, on ${manifest.writtenBy.at} (PostgreSQL ${manifest.writtenBy.postgres}),
by \`scripts/replay-fixtures.ts\` as committed with this folder.
Schema: the migrations ${manifest.schema.migrations.join(", ")}.

**Append-only.** This folder is never regenerated or edited: it is what that version stored, and
\`test/replay/Replay.test.ts\` checks that the engine of the day still finishes every run in it. A
change that needs other rows here would strand the runs of every database that version wrote. A new
version of the library adds a new folder (\`node --conditions=taskgraph-source scripts/replay-fixtures.ts\`).

**The workflows are frozen.** \`test/fixtures/replay/workflows.ts\` is the application code that
wrote these rows and that the test registers to finish them: its definitions never change.

The writer's clock started at ${manifest.clock}, so every due time here (a delay, a backoff, a
delayed start, a dead worker's lease) is in the past when the fixture is replayed.

| case | workflow | input | stored as |
| --- | --- | --- | --- |
${cases.join("\n")}

Files: \`manifest.json\` (the above, and which run is which case), one \`<table>.json\` per table
(every column of every row, one row per line, as PostgreSQL's \`json_agg\` writes it).
`
}
