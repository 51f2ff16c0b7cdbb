/**
 * `npm run soak`: the reliability soak. Hundreds of mixed workflows (chain, group, map, iterate,
 * delay, onError, revoke) on two fleets at once — Postgres-worker processes, and application
 * processes on Cloud Tasks (the emulator) — while worker processes are SIGKILLed at random and
 * started again, PostgreSQL is restarted once, and Cloud Tasks delivers twice, refuses CreateTask
 * and meets 503s. Then a checker proves every run final, every join and finalize fired once, no
 * result recorded twice, nothing run after a revoke, every output right, and prints a table
 * (runs, kills, bodies re-run, reclaim times p50/max); then the HTTP routes are fuzzed with
 * 10,000 inputs (`--fuzz N`; none in the short form). Exit code 1 on any violation, 2 on a usage
 * error. Bounded: a few minutes by default (the load window plus the drain); see
 * scripts/soak/Options.ts for the flags, and scripts/soak/Soak.ts for what runs.
 *
 *   npm run soak                         # the default long form (600 runs, 150 s of load)
 *   npm run soak -- --short --seed 42    # the short form `npm test` runs, with a given seed
 *
 * Ctrl-C stops the load and the drain early; everything started is still stopped and checked.
 */
import { spawnSync } from "node:child_process"
import path from "node:path"
import { parseOptions, type SoakOptions, UsageError, usage } from "./soak/Options.ts"
import { formatReport, writeReport } from "./soak/Report.ts"
import { runSoak } from "./soak/Soak.ts"

process.env.METADATA_SERVER_DETECTION = "none"
const root = path.join(import.meta.dirname, "..")
if (Number(process.versions.node.split(".")[0]) < 22) {
  console.error(`the soak needs Node 22 or newer (this is ${process.version}): run it with npm run soak`)
  process.exit(2)
}

let options: SoakOptions
try {
  options = parseOptions(process.argv.slice(2))
} catch (error) {
  if (!(error instanceof UsageError)) throw error
  if (error.message !== "") console.error(error.message)
  console.error(usage)
  process.exit(error.message === "" ? 0 : 2)
}

const abort = new AbortController()
const onSignal = (signal: NodeJS.Signals) => {
  if (abort.signal.aborted) return
  console.error(`\n${signal}: ending the soak early (stopping and checking what ran)`)
  abort.abort()
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

try {
  const report = await runSoak(options, { signal: abort.signal })
  console.log(`\n${formatReport(report)}`)
  if (options.json !== null) console.log(`JSON: ${await writeReport(report, options.json)}`)
  process.exitCode = report.clean ? 0 : 1
  if (options.fuzzRuns > 0 && !abort.signal.aborted) {
    // the routes under thousands of malformed, forged and unknown inputs: no 5xx, no row changed
    console.log(`\n== fuzzing the HTTP routes with ${options.fuzzRuns} inputs (test/adapters/hono/RoutesFuzz.test.ts) ==`)
    const fuzz = spawnSync(process.execPath, [path.join(root, "node_modules/vitest/vitest.mjs"), "run", "test/adapters/hono/RoutesFuzz.test.ts"], {
      cwd: root,
      stdio: "inherit",
      env: { ...process.env, TASKGRAPH_FUZZ_RUNS: String(options.fuzzRuns) },
    })
    if (fuzz.status !== 0) process.exitCode = 1
  }
} catch (error) {
  console.error("soak failed:", error)
  process.exitCode = 1
} finally {
  process.off("SIGINT", onSignal)
  process.off("SIGTERM", onSignal)
}
