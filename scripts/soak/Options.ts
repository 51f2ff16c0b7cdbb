/**
 * Options: what a soak does, its two presets (the default long form of `npm run soak`, a few
 * minutes; the short form `npm test` runs, about a minute) and how the command line and the
 * environment set them. A flag wins over its environment variable, which wins over the preset.
 *
 * | flag                | env                 | long  | short | meaning                                             |
 * | ------------------- | ------------------- | ----- | ----- | --------------------------------------------------- |
 * | --short             | SOAK_SHORT=1        |       |       | start from the short preset                         |
 * | --duration S        | SOAK_DURATION       | 150   | 30    | seconds over which the runs are started (load)      |
 * | --workflows N       | SOAK_WORKFLOWS      | 600   | 90    | runs started, both fleets together                  |
 * | --kill-every S      | SOAK_KILL_EVERY     | 5     | 3     | mean seconds between SIGKILLs, per fleet (0: none)  |
 * | --seed N            | SOAK_SEED           | time  | time  | the schedule's seed (printed; rerun with it)        |
 * | --pg-workers N      | SOAK_PG_WORKERS     | 3     | 2     | Postgres-worker processes                           |
 * | --ct-apps N         | SOAK_CT_APPS        | 2     | 2     | Cloud Tasks app processes                           |
 * | --revoke-rate F     | SOAK_REVOKE_RATE    | 0.08  | 0.1   | share of runs the driver revokes while in flight     |
 * | --lease S           | SOAK_LEASE          | 5     | 5     | a claim's lease (the runtime's `lease`)             |
 * | --drain S           | SOAK_DRAIN          | 180   | 60    | longest wait, after the load, for every run to end  |
 * | --no-pg-restart     | SOAK_PG_RESTART=0   |       |       | leave PostgreSQL running                            |
 * | --pg-down S         | SOAK_PG_DOWN        | 1.5   | 1     | seconds PostgreSQL stays down when restarted        |
 * | --faults SPEC       | SOAK_FAULTS         | none  | none  | `TASKGRAPH_FAULTS` for the child processes (engine/Faults.ts) |
 * | --json PATH         | SOAK_JSON           | bench/results/soak-<time>.json | none | where the report's JSON goes |
 * | --keep-logs         | SOAK_KEEP_LOGS=1    |       |       | keep the child logs (always kept on a violation)    |
 * | --fuzz N            | SOAK_FUZZ           | 10000 | 0     | then fuzz the HTTP routes with N inputs (0: skip)   |
 */
import path from "node:path"
import type { Kind } from "./Workflows.ts"

export interface SoakOptions {
  readonly seed: number
  /** Runs started, both fleets together. */
  readonly workflows: number
  /** Seconds over which the starts are spread; kills, revokes and faults happen within it. */
  readonly loadSeconds: number
  /** Mean seconds between SIGKILLs in each fleet (a Poisson process); 0 kills nothing. */
  readonly killEverySeconds: number
  /** A killed slot is started again after a pause drawn from this range (seconds). */
  readonly restartDelaySeconds: readonly [number, number]
  readonly pgWorkers: number
  readonly ctApps: number
  /** Steps a process advances at once. */
  readonly concurrency: number
  readonly revokeRate: number
  /** The runtime's `lease` in every process (seconds). */
  readonly leaseSeconds: number
  /** When PostgreSQL is restarted (a share of the load window), and how long it stays down (seconds); null: never. */
  readonly postgresRestart: { readonly at: number; readonly downSeconds: number } | null
  readonly cloudTasksFaults: {
    /** Deliveries made twice at once, per second. */
    readonly duplicatesPerSecond: number
    /** Chance per second that the next 1–3 CreateTask calls answer UNAVAILABLE. */
    readonly unavailablePerSecond: number
    /** Share of callbacks the front answers 503 without forwarding. */
    readonly reject503: number
    /** Share of the apps' 2xx answers the front replaces by a 503. */
    readonly lose2xx: number
  }
  /** `TASKGRAPH_FAULTS` for the worker and app processes ("" for none). */
  readonly taskgraphFaults: string
  /** Longest wait after the load window for every run to end (seconds). */
  readonly drainSeconds: number
  readonly mix: Readonly<Record<Kind, number>>
  /** Where the report's JSON is written (null: nowhere). */
  readonly json: string | null
  readonly keepLogs: boolean
  /** Inputs for the routes fuzz run after the soak (test/adapters/hono/RoutesFuzz.test.ts); 0 skips it. */
  readonly fuzzRuns: number
}

const mix: Record<Kind, number> = { chain: 15, group: 15, map: 15, iterate: 10, delay: 10, retry: 10, onError: 10, slow: 15 }

export const longPreset = (seed: number): SoakOptions => ({
  seed,
  workflows: 600,
  loadSeconds: 150,
  killEverySeconds: 5,
  restartDelaySeconds: [0.3, 1.5],
  pgWorkers: 3,
  ctApps: 2,
  concurrency: 4,
  revokeRate: 0.08,
  leaseSeconds: 5,
  postgresRestart: { at: 0.45, downSeconds: 1.5 },
  cloudTasksFaults: { duplicatesPerSecond: 3, unavailablePerSecond: 0.3, reject503: 0.03, lose2xx: 0.02 },
  taskgraphFaults: "",
  drainSeconds: 180,
  mix,
  json: path.join(import.meta.dirname, "../../bench/results", `soak-${new Date().toISOString().replace(/[:.]/g, "-")}.json`),
  keepLogs: false,
  fuzzRuns: 10_000,
})

export const shortPreset = (seed: number): SoakOptions => ({
  ...longPreset(seed),
  workflows: 90,
  loadSeconds: 30,
  killEverySeconds: 3,
  pgWorkers: 2,
  ctApps: 2,
  revokeRate: 0.1,
  postgresRestart: { at: 0.45, downSeconds: 1 },
  drainSeconds: 60,
  json: null,
  fuzzRuns: 0,
})

export class UsageError extends Error {}

/** The options from `argv` (after the script) and `env`. */
export const parseOptions = (argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env): SoakOptions => {
  const flags = new Map<string, string | true>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`)
    const [name, inline] = arg.slice(2).split("=", 2) as [string, string | undefined]
    if (["short", "keep-logs", "no-pg-restart", "help"].includes(name)) flags.set(name, true)
    else {
      const value = inline ?? argv[++i]
      if (value === undefined) throw new UsageError(`--${name} needs a value`)
      flags.set(name, value)
    }
  }
  if (flags.has("help")) throw new UsageError("")
  const known = ["short", "keep-logs", "no-pg-restart", "pg-down", "duration", "workflows", "kill-every", "seed", "pg-workers", "ct-apps", "revoke-rate", "lease", "drain", "faults", "json", "fuzz"]
  for (const name of flags.keys()) if (!known.includes(name)) throw new UsageError(`unknown flag --${name}`)

  const raw = (flag: string, variable: string): string | undefined => {
    const value = flags.get(flag)
    if (typeof value === "string") return value
    const fromEnv = env[variable]
    return fromEnv === undefined || fromEnv === "" ? undefined : fromEnv
  }
  const number = (flag: string, variable: string, fallback: number, check: (n: number) => boolean, what: string): number => {
    const text = raw(flag, variable)
    if (text === undefined) return fallback
    const n = Number(text)
    if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${flag} (${variable}) must be ${what}, got ${JSON.stringify(text)}`)
    return n
  }
  const positiveInt = (n: number) => Number.isInteger(n) && n > 0
  const seed = number("seed", "SOAK_SEED", Date.now() % 2 ** 31, (n) => Number.isInteger(n) && n >= 0, "a non-negative integer")
  const short = flags.has("short") || env.SOAK_SHORT === "1"
  const base = short ? shortPreset(seed) : longPreset(seed)
  const restart = !(flags.has("no-pg-restart") || env.SOAK_PG_RESTART === "0")
  const json = raw("json", "SOAK_JSON")
  return {
    ...base,
    workflows: number("workflows", "SOAK_WORKFLOWS", base.workflows, positiveInt, "a positive integer"),
    loadSeconds: number("duration", "SOAK_DURATION", base.loadSeconds, (n) => n > 0, "a positive number of seconds"),
    killEverySeconds: number("kill-every", "SOAK_KILL_EVERY", base.killEverySeconds, (n) => n >= 0, "a number of seconds (0: no kills)"),
    pgWorkers: number("pg-workers", "SOAK_PG_WORKERS", base.pgWorkers, positiveInt, "a positive integer"),
    ctApps: number("ct-apps", "SOAK_CT_APPS", base.ctApps, positiveInt, "a positive integer"),
    revokeRate: number("revoke-rate", "SOAK_REVOKE_RATE", base.revokeRate, (n) => n >= 0 && n <= 1, "between 0 and 1"),
    leaseSeconds: number("lease", "SOAK_LEASE", base.leaseSeconds, (n) => n > 0, "a positive number of seconds"),
    drainSeconds: number("drain", "SOAK_DRAIN", base.drainSeconds, (n) => n > 0, "a positive number of seconds"),
    postgresRestart: restart && base.postgresRestart !== null
      ? { ...base.postgresRestart, downSeconds: number("pg-down", "SOAK_PG_DOWN", base.postgresRestart.downSeconds, (n) => n >= 0, "a number of seconds") }
      : null,
    taskgraphFaults: raw("faults", "SOAK_FAULTS") ?? "",
    json: json === undefined ? base.json : json === "-" ? null : json,
    keepLogs: flags.has("keep-logs") || env.SOAK_KEEP_LOGS === "1",
    fuzzRuns: number("fuzz", "SOAK_FUZZ", base.fuzzRuns, (n) => Number.isInteger(n) && n >= 0, "a number of inputs (0: no fuzzing)"),
  }
}

export const usage = `usage: npm run soak -- [--short] [--duration S] [--workflows N] [--kill-every S] [--seed N]
                     [--pg-workers N] [--ct-apps N] [--revoke-rate F] [--lease S] [--drain S]
                     [--no-pg-restart] [--pg-down S] [--faults SPEC] [--json PATH|-] [--keep-logs] [--fuzz N]
(see scripts/soak/Options.ts for the environment variables and the presets)`

