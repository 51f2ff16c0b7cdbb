/**
 * `npm run bench`: every benchmark in turn, each on its own embedded PostgreSQL (fsync,
 * synchronous_commit and full_page_writes off unless said; 127.0.0.1 only; pg_stat_statements,
 * track=all), then a summary. Tables go to stdout, JSON to bench/results/<name>.json (gitignored).
 *
 * - bench/chain.ts     engine steps/s, commits and statements per step vs an insert-commit loop
 * - bench/wakeup.ts    LISTEN/NOTIFY vs polling: start → step latency and idle database load
 * - bench/iterate.ts   sharded iteration over 1,000,000 rows vs a plain keyset-pagination loop
 * - bench/peers/run.ts taskgraph beside graphile-worker, pg-boss and DBOS on a durable server:
 *                      chain, latency, fan-out and starts vs the INSERT limits
 * - bench/cloud-tasks-shards.ts  10,000 tasks past one Cloud Tasks queue: 1, 4 and 8 queue shards
 *                      through the emulator's real rate limits vs 500/s per queue, and a fan-out
 *
 * `npm run bench -- --peers` runs the peers section alone (as `npm run bench:peers` does).
 */
import { runChainBench } from "./chain.ts"
import { runCloudTasksShardsBench } from "./cloud-tasks-shards.ts"
import { runIterateBench } from "./iterate.ts"
import { round, table, writeResult } from "./lib.ts"
import { type PeersBenchResult, runPeersBench } from "./peers/run.ts"
import { runWakeupBench } from "./wakeup.ts"

/** The peers' headline numbers for the summary: taskgraph's median beside each peer's. */
const peerRows = (peers: PeersBenchResult): Array<Array<string | number>> => {
  const median = (name: string, key: string): number | undefined => {
    const v = peers.summary[name]?.[key]
    return typeof v === "object" && v !== null && Number.isFinite(v.median) ? v.median : undefined
  }
  const rows: Array<Array<string | number>> = []
  const measures: ReadonlyArray<readonly [string, string]> = [
    ["chain steps/s", "chainStepsPerSec"],
    ["fan-out s", "fanoutSeconds"],
    ["starts s", "startsSeconds"],
  ]
  const ran = peers.systems.filter((s) => s.unavailable === undefined)
  for (const [label, key] of measures) {
    rows.push([`peers ${label}: ${ran.map((s) => s.name).join(" · ")}`, ran.map((s) => median(s.name, key) ?? "—").join(" · "), "", ""])
  }
  const tg = peers.summary["taskgraph"]
  // the goals' form (issue 15): the same rows' multi-row INSERT ÷ taskgraph's time (1 = as fast as it)
  for (const [label, key] of [["startMany", "bulkStartsOverSameRowsInsert"], ["start() × n", "startsOverSameRowsInsert"]] as const) {
    const ratio = tg?.[key]
    if (typeof ratio === "object" && ratio !== null && typeof ratio.median === "number" && ratio.median > 0) {
      rows.push([`peers: same rows' INSERT ÷ taskgraph ${label}`, Math.round(100 / ratio.median) / 100, "≥ 0.5", 1 / ratio.median >= 0.5 ? "ok" : "MISSED"])
    }
  }
  for (const s of peers.systems) if (s.unavailable !== undefined) rows.push([`peers: ${s.name}`, `did not run: ${s.unavailable}`, "", ""])
  return rows
}

const runAll = async () => {
  const started = performance.now()
  const chain = await runChainBench()
  const wakeup = await runWakeupBench()
  const iterate = await runIterateBench()
  const peers = await runPeersBench()
  const shards = await runCloudTasksShardsBench()
  const totalS = round((performance.now() - started) / 1000, 1)

  const mark = (ok: boolean) => (ok ? "ok" : "MISSED")
  const rows: Array<Array<string | number>> = [
    ["insert-commits/s (1 client, autocommit)", chain.insert.commitsPerSec, "", ""],
    ...chain.workloads.map((w) => [`${w.name}: steps/s`, w.stepsPerSec, "", ""]),
    ["chain: steps/s ÷ insert-commits/s", chain.chain.ratioToInsertCommits, "≥ 0.33", mark(chain.chain.meetsRatio)],
    ["chain: commits/step", chain.chain.commitsPerStep, "≤ 2", mark(chain.chain.meetsCommits)],
    ["chain: statements/step", chain.chain.statementsPerStep, "", ""],
    ...wakeup.modes.map((m) => [`wakeup ${m.mode}: p50 / p95 ms`, `${m.latencyMs.p50} / ${m.latencyMs.p95}`, "", ""]),
    ...wakeup.modes.map((m) => [`idle ${m.mode}: stmts/s`, m.idle.statementsPerSec, "", ""]),
    [`iterate ${iterate.options.rows} rows: plain keyset loop rows/s`, iterate.plainRowsPerSec, "", ""],
    ["iterate 1 shard: rows/s", iterate.oneShard.rowsPerSec, "", ""],
    ["iterate 1 shard ÷ plain loop", iterate.oneShard.ratio, "≥ 0.7", mark(iterate.oneShard.meets)],
    ["iterate 2 shards ÷ 1 shard (one process)", iterate.scaling.inProcess, "", ""],
    ["iterate 2 shards ÷ 1 shard (two processes)", iterate.scaling.twoProcesses, "> 1", mark(iterate.scaling.twoProcesses > 1)],
    ...peerRows(peers),
    ...shards.ceiling.map((c) => [`cloud tasks ${c.tasks} tasks on ${c.shards} shard(s): dispatch ÷ N/(500×shards)`, c.ratio, "≤ 1.1", mark(c.ratio <= 1.1)]),
    ...shards.fanOut.map((f) => [`cloud tasks fan-out of ${f.members} on ${f.shards} shard(s): total ÷ ceiling`, f.totalRatio, "", ""]),
  ]
  console.log(`\n== summary (${totalS} s) ==`)
  console.log(table(["measure", "value", "target", ""], rows))
  console.log(`  ${wakeup.recommendation}`)
  console.log(`  → ${await writeResult("summary", { date: new Date().toISOString(), totalSeconds: totalS, chain, wakeup, iterate, peers: peers.summary, shards })}`)
}

try {
  if (process.argv.includes("--peers")) await runPeersBench()
  else await runAll()
} catch (error) {
  console.error(error)
  process.exitCode = 1
}
