/**
 * Soak: the driver. It builds a small production on this machine, runs a seeded plan of mixed
 * workflows through it while breaking it on purpose, waits for every run to end, and hands the
 * databases to the checker (./Checker.ts). `runSoak(options)` returns the report; it starts
 * nothing it does not stop again, also when it fails or is aborted (the signal).
 *
 * What runs, all on 127.0.0.1:
 * - one embedded PostgreSQL of the soak's own (./Postgres.ts: its own port and data directory
 *   under the OS temporary directory), with a database per fleet;
 * - fleet "pg": Postgres-worker processes (./child.ts, role pg-worker) on database soak_pg;
 * - fleet "ct": application processes on Cloud Tasks (role ct-app) on database soak_ct, behind
 *   the front (./Front.ts), fed by the Cloud Tasks emulator (from src/emulators.ts) running in
 *   this process, with queues provisioned by `syncQueues` (unlimited attempts, 100 ms – 1 s
 *   backoff, as a queue for taskgraph should be);
 * - in this process, one runtime per fleet that only starts and revokes (no worker, no sweeper).
 *
 * The plan (from the seed): `workflows` runs, alternately on each fleet, of kinds drawn from the
 * mix (./Workflows.ts), started evenly over the load window with idempotency keys (a start that
 * fails while PostgreSQL is down is tried again and cannot start twice); a share of them revoked
 * while in flight (see `revokeAfter`). During the load window:
 * - each fleet loses a live process to SIGKILL (by pid) at random, on average every
 *   `killEverySeconds`; its slot is started again 0.3–1.5 s later;
 * - PostgreSQL is stopped (fast shutdown: every connection dropped) once, at `postgresRestart.at`
 *   of the window, and started again on the same data directory `downSeconds` later;
 * - Cloud Tasks: every second the emulator delivers the next `duplicatesPerSecond` attempts twice
 *   at once, now and then the next 1–3 CreateTask calls answer UNAVAILABLE, and the front answers
 *   503 to a share of callbacks and loses a share of the apps' 2xx answers.
 * With `taskgraphFaults` the child processes also run with `TASKGRAPH_FAULTS` (engine/Faults.ts):
 * a fault point's crash is counted as a kill. After the window the faults stop, and the driver
 * waits (at most `drainSeconds`) for every run to end; then the fleets are stopped and the checker
 * reads both databases.
 *
 * Every process runs with `lease: leaseSeconds` (a claim lapses that long after its last renewal,
 * so a killed process's nodes are claimable again after it); workers reclaim every second, the
 * apps' sweepers pass every second and re-dispatch what stayed ready for 3 s.
 *
 * The report is clean when every run ended within the drain bound, the checker found no
 * violation, no process crashed unasked, every killed slot started again and every start
 * succeeded. The temporary directory goes at the end; its `logs/` (every child's output) stays
 * when the report is not clean, or with `keepLogs`.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect } from "effect"
import pg from "pg"
import { cloudTasksRuntime, emulatorClient, syncQueues } from "../../src/cloud-tasks.ts"
import { startCloudTasksEmulator, type CloudTasksEmulator, type EmulatorStats } from "../../src/emulators.ts"
import { createRuntime, type Runtime, type Workflow } from "../../src/index.ts"
import { checkFleet, type FleetVerdict, type PlannedRun } from "./Checker.ts"
import { Fleet, type UnexpectedExit } from "./Fleet.ts"
import { type Front, type FrontStats, startFront } from "./Front.ts"
import type { SoakOptions } from "./Options.ts"
import { type SoakPostgres, startSoakPostgres } from "./Postgres.ts"
import { Random } from "./Random.ts"
import { allWorkflows, expectations, type Kind, soakSchema, soakWorkflows } from "./Workflows.ts"

export const project = "taskgraph-soak"
export const location = "us-central1"
export const queue = "soak"
export const serviceAccount = "soak-invoker@taskgraph-soak.iam.gserviceaccount.com"
const fleets = { pg: "soak_pg", ct: "soak_ct" } as const
type FleetName = keyof typeof fleets

export interface FleetReport extends FleetVerdict {
  /** Processes started in the fleet (the first of each slot included). */
  readonly processes: number
  /** Processes that exited without being killed or asked to: crashes. */
  readonly unexpectedExits: ReadonlyArray<UnexpectedExit>
  /** Slots that could not be started again after a kill. */
  readonly failedRestarts: number
  /** Processes that SIGKILLed themselves at a fault point (`--faults`); counted in `kills` too. */
  readonly faultCrashes: number
}

export interface SoakReport {
  readonly seed: number
  readonly options: SoakOptions
  readonly startedAt: string
  readonly seconds: { readonly total: number; readonly setup: number; readonly load: number; readonly drain: number }
  /** True when every run ended within the drain bound. */
  readonly drained: boolean
  readonly aborted: boolean
  readonly postgres: { readonly restarts: number; readonly downMs: number | null }
  readonly starts: { readonly planned: number; readonly started: number; readonly failed: number }
  readonly fleets: ReadonlyArray<FleetReport>
  readonly cloudTasks: {
    readonly injected: { readonly duplicates: number; readonly unavailable: number }
    readonly emulator: EmulatorStats
    readonly front: FrontStats
  }
  readonly violations: number
  readonly clean: boolean
  /** The child processes' logs, when kept. */
  readonly logs: string | null
}

export interface SoakHooks {
  readonly log?: (line: string) => void
  /** Aborting ends the load and the drain early; everything is still stopped and checked. */
  readonly signal?: AbortSignal
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e))

export const runSoak = async (options: SoakOptions, hooks: SoakHooks = {}): Promise<SoakReport> => {
  const log = hooks.log ?? ((line: string) => console.log(line))
  const signal = hooks.signal
  const aborted = () => signal?.aborted === true
  /** Sleeps until `at` (epoch ms), or until aborted. */
  const until = (at: number) =>
    new Promise<void>((resolve) => {
      if (aborted()) return resolve()
      const done = () => {
        clearTimeout(timer)
        signal?.removeEventListener("abort", done)
        resolve()
      }
      const timer = setTimeout(done, Math.max(0, at - Date.now()))
      signal?.addEventListener("abort", done, { once: true })
    })
  const pause = (ms: number) => until(Date.now() + ms)

  const t0 = Date.now()
  const seed = options.seed
  const random = new Random(seed)
  const root = await mkdtemp(path.join(os.tmpdir(), "taskgraph-soak-"))
  // the server runs as the `postgres` user, which must reach its data directory below
  await chmod(root, 0o755)
  const logDir = path.join(root, "logs")
  await mkdir(logDir)

  /** What to stop, in reverse order of starting; each runs once, whatever happened before. */
  const stops: Array<{ readonly name: string; readonly run: () => Promise<void> }> = []
  const stopAll = async () => {
    while (stops.length > 0) {
      const stop = stops.pop()!
      const began = Date.now()
      await stop.run().catch((e: unknown) => log(`soak: stopping ${stop.name} failed: ${message(e)}`))
      if (Date.now() - began > 5000) log(`soak: stopping ${stop.name} took ${((Date.now() - began) / 1000).toFixed(1)} s`)
    }
  }
  let clean = false
  try {
    // -- setup ---------------------------------------------------------------------------------
    const server: SoakPostgres = await startSoakPostgres(root, Object.values(fleets), soakSchema)
    stops.push({ name: "PostgreSQL", run: () => server.close() })
    const emulator: CloudTasksEmulator = await startCloudTasksEmulator()
    stops.push({ name: "the Cloud Tasks emulator", run: () => emulator.stop() })
    const client = emulatorClient(emulator.address, project)
    stops.push({ name: "the Cloud Tasks client", run: () => client.close() })
    await Effect.runPromise(syncQueues(client, {
      project,
      location,
      queues: [{ name: queue, maxAttempts: -1, minBackoff: "100 millis", maxBackoff: 1, maxDoublings: 3, maxDispatchesPerSecond: 500, maxConcurrentDispatches: 100 }],
    }))
    const certsFile = path.join(root, "emulator-certs.json")
    await writeFile(certsFile, JSON.stringify(emulator.certs))

    const faults = options.cloudTasksFaults
    let ctFleet: Fleet | undefined
    const front: Front = await startFront(() => ctFleet?.live().map((m) => m.port) ?? [], new Random(seed ^ 0x5f3759df), {
      reject503: faults.reject503,
      lose2xx: faults.lose2xx,
    })
    stops.push({ name: "the front", run: () => front.close() })

    const childEnv = options.taskgraphFaults === "" ? {} : { taskgraphFaults: options.taskgraphFaults }
    const pgFleet = new Fleet({
      name: "pg",
      size: options.pgWorkers,
      logDir,
      ...childEnv,
      config: () => ({ role: "pg-worker", databaseUrl: server.url(fleets.pg), seed, concurrency: options.concurrency, lease: options.leaseSeconds }),
    })
    ctFleet = new Fleet({
      name: "ct",
      size: options.ctApps,
      logDir,
      ...childEnv,
      config: () => ({
        role: "ct-app",
        databaseUrl: server.url(fleets.ct),
        seed,
        concurrency: options.concurrency,
        lease: options.leaseSeconds,
        cloudTasks: { emulator: emulator.address, project, location, queue, callbackUrl: front.url, serviceAccount, certsFile },
      }),
    })
    const byName: Record<FleetName, Fleet> = { pg: pgFleet, ct: ctFleet }
    stops.push({ name: "the fleets", run: async () => void (await Promise.all([pgFleet.stop(), ctFleet!.stop()])) })
    await Promise.all([pgFleet.start(), ctFleet.start()])

    // the driver's own runtimes: they start and revoke runs, nothing else
    const orms: Partial<Record<FleetName, MikroORM>> = {}
    for (const name of Object.keys(fleets) as Array<FleetName>) {
      orms[name] = await MikroORM.init(defineConfig({
        clientUrl: server.url(fleets[name]),
        entities: [],
        discovery: { warnWhenNoEntities: false },
        pool: { min: 0, max: 8 },
        ensureDatabase: false,
        debug: false,
      }))
      const orm = orms[name]
      stops.push({ name: `the ${name} ORM`, run: () => orm.close() })
    }
    const runtimes: Record<FleetName, Runtime> = {
      pg: await createRuntime({ orm: orms.pg!, workflows: allWorkflows, worker: false }),
      ct: await cloudTasksRuntime({
        orm: orms.ct!,
        workflows: allWorkflows,
        cloudTasks: { project, location, defaultQueue: queue, callbackUrl: front.url, oidc: { serviceAccountEmail: serviceAccount, audience: front.url }, client },
        sweeper: false,
      }),
    }
    stops.push({ name: "the driver's runtimes", run: async () => void (await Promise.all([runtimes.pg.close(), runtimes.ct.close()])) })
    /** Counts runs not ended yet, per fleet (null while the database cannot answer). */
    const probes = Object.fromEntries((Object.keys(fleets) as Array<FleetName>).map((name) => {
      const pool = new pg.Pool({ connectionString: server.url(fleets[name]), max: 1, connectionTimeoutMillis: 2000 })
      pool.on("error", () => undefined)
      pool.on("connect", (c) => c.on("error", () => undefined))
      stops.push({ name: `the ${name} probe`, run: () => pool.end() })
      return [name, pool]
    })) as Record<FleetName, pg.Pool>
    const openRuns = async (name: FleetName): Promise<number | null> =>
      probes[name].query<{ n: number }>("select count(*)::int as n from taskgraph_runs where status not in ('succeeded', 'failed', 'revoked')")
        .then((r) => r.rows[0]!.n, () => null)

    // -- the plan --------------------------------------------------------------------------------
    /**
     * Revokes aim at runs in flight: slow runs (2–4 s) are chosen three times as often and revoked
     * within their first 3 s; the others (mostly done within a second) within 50–700 ms.
     */
    const revokeAfter = (kind: Kind): number | null => {
      const p = kind === "slow" ? Math.min(1, options.revokeRate * 3) : options.revokeRate * 0.7
      if (!random.chance(p)) return null
      return Math.round(kind === "slow" ? random.between(200, 3000) : random.between(50, 700))
    }
    const plan: Array<PlannedRun & { readonly revokeAfterMs: number | null }> = Array.from({ length: options.workflows }, (_, i) => {
      const kind = random.weighted(options.mix)
      return {
        key: `soak-${seed}-${i}`,
        fleet: i % 2 === 0 ? "pg" : "ct",
        kind,
        input: expectations[kind].input(random),
        revokeAfterMs: revokeAfter(kind),
      }
    })
    // the first map of each fleet is wide (64+ elements): its collect counts in bucket rows
    for (const fleet of ["pg", "ct"] as const) {
      const i = plan.findIndex((p) => p.fleet === fleet && p.kind === "map")
      if (i >= 0) plan[i] = { ...plan[i]!, input: random.int(64, 80) }
    }
    const setupSeconds = (Date.now() - t0) / 1000
    log(`soak: seed ${seed}; ${plan.length} runs over ${options.loadSeconds} s; fleets pg ×${options.pgWorkers} (pids ${pgFleet.live().map((m) => m.pid).join(" ")}), ` +
      `ct ×${options.ctApps} (pids ${ctFleet.live().map((m) => m.pid).join(" ")}); PostgreSQL on port ${server.port}; set up in ${setupSeconds.toFixed(1)} s`)

    // -- load ----------------------------------------------------------------------------------
    const loadStart = Date.now()
    const loadMs = options.loadSeconds * 1000
    const loadEnd = loadStart + loadMs
    const background = new Set<Promise<void>>()
    const track = (work: Promise<void>) => {
      background.add(work)
      void work.finally(() => background.delete(work))
    }
    const workflowOf = (kind: Kind) => soakWorkflows[kind] as unknown as Workflow<string, number, unknown>

    const revoke = async (p: PlannedRun) => {
      const record: NonNullable<PlannedRun["revoke"]> = { requestedAt: Date.now(), tries: 0 }
      p.revoke = record
      while (record.tries < 40) {
        record.tries++
        try {
          const outcome = await runtimes[p.fleet as FleetName].revoke(p.run!, { reason: "soak" })
          record.outcome = outcome._tag
          if (outcome._tag === "Revoked") record.runRevoked = outcome.runRevoked
          record.answeredAt = Date.now()
          return
        } catch {
          // PostgreSQL restarting: the revoke either committed (the next try says AlreadyFinished) or not
          await pause(500)
          if (aborted()) break
        }
      }
      record.outcome = "error"
    }
    let failedStarts = 0
    const start = async (p: (typeof plan)[number]) => {
      for (let tries = 1; ; tries++) {
        try {
          const handle = await runtimes[p.fleet as FleetName].start(workflowOf(p.kind), p.input, { idempotencyKey: p.key })
          p.run = handle.id
          p.startedAt = Date.now()
          break
        } catch (e) {
          if (tries >= 40 || aborted()) {
            p.startError = message(e)
            failedStarts++
            return
          }
          await pause(500)
        }
      }
      if (p.revokeAfterMs !== null) {
        await pause(p.revokeAfterMs)
        if (!aborted()) await revoke(p)
      }
    }
    const starter = (async () => {
      for (let i = 0; i < plan.length && !aborted(); i++) {
        await until(loadStart + (i * loadMs) / plan.length)
        if (!aborted()) track(start(plan[i]!))
      }
    })()

    const failedRestarts: Record<FleetName, number> = { pg: 0, ct: 0 }
    let stoppingFleets = false
    const respawn = async (name: FleetName, slot: number) => {
      for (let tries = 1; tries <= 5; tries++) {
        if (stoppingFleets || aborted()) return
        try {
          await byName[name].respawn(slot)
          return
        } catch (e) {
          if (stoppingFleets || aborted()) return
          log(`soak: ${name}[${slot}] did not start again (try ${tries}): ${message(e).split("\n")[0]}`)
          await pause(1000)
        }
      }
      if (!stoppingFleets) failedRestarts[name]++
    }
    const killer = async (name: FleetName, chance: Random) => {
      if (options.killEverySeconds <= 0) return
      while (!aborted()) {
        await until(Math.min(loadEnd, Date.now() + chance.exponential(options.killEverySeconds * 1000)))
        if (aborted() || Date.now() >= loadEnd) return
        const live = byName[name].live()
        if (live.length === 0) continue
        const victim = chance.pick(live)
        byName[name].kill(victim)
        const [lo, hi] = options.restartDelaySeconds
        const delay = chance.between(lo, hi) * 1000
        track(pause(delay).then(() => respawn(name, victim.slot)))
      }
    }
    const injected = { duplicates: 0, unavailable: 0 }
    const faulter = async (chance: Random) => {
      while (!aborted() && Date.now() < loadEnd) {
        await pause(1000)
        if (faults.duplicatesPerSecond > 0) {
          emulator.faults.duplicateDeliveries(faults.duplicatesPerSecond)
          injected.duplicates += faults.duplicatesPerSecond
        }
        if (chance.chance(faults.unavailablePerSecond)) {
          const n = chance.int(1, 3)
          emulator.faults.failNext("CreateTask", "UNAVAILABLE", n)
          injected.unavailable += n
        }
      }
    }
    let restart: { stoppedAt: number; startedAt: number } | undefined
    const restarter = async () => {
      if (options.postgresRestart === null) return
      await until(loadStart + options.postgresRestart.at * loadMs)
      if (aborted()) return
      log(`soak: stopping PostgreSQL for ${options.postgresRestart.downSeconds} s`)
      restart = await server.restart(options.postgresRestart.downSeconds * 1000)
      log(`soak: PostgreSQL is back (down ${((restart.startedAt - restart.stoppedAt) / 1000).toFixed(1)} s)`)
    }
    const progress = (async () => {
      while (!aborted() && Date.now() < loadEnd) {
        await until(Math.min(loadEnd, Date.now() + 15_000))
        if (Date.now() >= loadEnd) break
        const started = plan.filter((p) => p.run !== undefined).length
        log(`soak: ${Math.round((Date.now() - loadStart) / 1000)} s: ${started}/${plan.length} started; kills pg ${pgFleet.kills.length}, ct ${ctFleet!.kills.length}; ` +
          `open runs pg ${await openRuns("pg") ?? "?"}, ct ${await openRuns("ct") ?? "?"}`)
      }
    })()
    await Promise.all([starter, killer("pg", new Random(seed ^ 0x9e3779b9)), killer("ct", new Random(seed ^ 0x7f4a7c15)), faulter(new Random(seed ^ 0x2545f491)), restarter(), progress])
    const loadSeconds = (Date.now() - loadStart) / 1000

    // -- drain ---------------------------------------------------------------------------------
    emulator.faults.clear()
    front.faults.reject503 = 0
    front.faults.lose2xx = 0
    const drainStart = Date.now()
    const drainEnd = drainStart + options.drainSeconds * 1000
    let drained = false
    let lastLog = drainStart
    while (!aborted() && Date.now() < drainEnd) {
      const open = [await openRuns("pg"), await openRuns("ct")]
      if (background.size === 0 && open[0] === 0 && open[1] === 0) {
        drained = true
        break
      }
      if (Date.now() - lastLog >= 10_000) {
        lastLog = Date.now()
        log(`soak: draining: open runs pg ${open[0] ?? "?"}, ct ${open[1] ?? "?"}; ${background.size} starts, revokes or restarts pending`)
      }
      await pause(500)
    }
    const drainSeconds = (Date.now() - drainStart) / 1000
    if (!drained) log(`soak: runs still open after ${drainSeconds.toFixed(0)} s of drain`)
    // the starts and revokes still pending end within their bounded tries
    let bound: NodeJS.Timeout | undefined
    await Promise.race([Promise.allSettled([...background]), new Promise((resolve) => (bound = setTimeout(resolve, 25_000)))])
    clearTimeout(bound)

    // -- check ---------------------------------------------------------------------------------
    stoppingFleets = true
    await Promise.all([pgFleet.stop(), ctFleet.stop()])
    const reports: Array<FleetReport> = []
    for (const name of Object.keys(fleets) as Array<FleetName>) {
      const fleet = byName[name]
      const verdict = await checkFleet(server.url(fleets[name]), name, plan, fleet.kills)
      reports.push({ ...verdict, processes: fleet.started, unexpectedExits: fleet.unexpectedExits, failedRestarts: failedRestarts[name], faultCrashes: fleet.faultCrashes.length })
    }
    const violations = reports.reduce((n, r) => n + r.violations.length, 0)
    const crashes = reports.reduce((n, r) => n + r.unexpectedExits.length + r.failedRestarts, 0)
    clean = drained && !aborted() && violations === 0 && crashes === 0 && failedStarts === 0
    const logs = clean && !options.keepLogs ? null : logDir
    return {
      seed,
      options,
      startedAt: new Date(t0).toISOString(),
      seconds: { total: (Date.now() - t0) / 1000, setup: setupSeconds, load: loadSeconds, drain: drainSeconds },
      drained,
      aborted: aborted(),
      postgres: { restarts: restart === undefined ? 0 : 1, downMs: restart === undefined ? null : restart.startedAt - restart.stoppedAt },
      starts: { planned: plan.length, started: plan.filter((p) => p.run !== undefined).length, failed: failedStarts },
      fleets: reports,
      cloudTasks: { injected, emulator: structuredClone(emulator.stats), front: structuredClone(front.stats) },
      violations,
      clean,
      logs,
    }
  } finally {
    await stopAll()
    // the data directory always goes; the logs stay when they may explain something
    if (clean && !options.keepLogs) await rm(root, { recursive: true, force: true })
    else {
      await rm(path.join(root, "pg"), { recursive: true, force: true })
      log(`soak: logs kept in ${logDir}`)
    }
  }
}
