/**
 * Report: the soak's report as the tables `npm run soak` prints (one line per fleet and a total:
 * runs by status, kills, crashes, bodies run and re-run, reclaim time p50/max, violations; then
 * runs by workflow and status), the lines under them (PostgreSQL restarts, the faults injected, revokes, retries, the verdict with
 * the violations listed), and the JSON file beside it (the whole report, reclaim samples
 * included).
 */
import { mkdir, writeFile } from "node:fs/promises"
import path from "node:path"
import type { SoakReport } from "./Soak.ts"

const pad = (cells: ReadonlyArray<string>, widths: ReadonlyArray<number>) =>
  `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`

/** A Markdown table with right-aligned numbers. */
export const table = (head: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string | number>>): string => {
  const text = rows.map((r) => r.map(String))
  const widths = head.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)))
  return [pad(head, widths), `|${widths.map((w, i) => (i === 0 ? `-${"-".repeat(w)}-` : `-${"-".repeat(w - 1)}:-`)).join("|")}|`, ...text.map((r) => pad(r, widths))].join("\n")
}

const seconds = (ms: number | null) => (ms === null ? "—" : `${(ms / 1000).toFixed(1)} s`)
const names: Record<string, string> = { pg: "Postgres workers", ct: "Cloud Tasks apps" }

export const formatReport = (report: SoakReport): string => {
  const rows = report.fleets.map((f) => {
    const other = f.runs - (f.byStatus.succeeded ?? 0) - (f.byStatus.failed ?? 0) - (f.byStatus.revoked ?? 0)
    return [
      names[f.fleet] ?? f.fleet,
      f.runs,
      f.byStatus.succeeded ?? 0,
      f.byStatus.failed ?? 0,
      f.byStatus.revoked ?? 0,
      other,
      f.kills,
      f.unexpectedExits.length,
      f.bodies.started,
      f.bodies.reRun,
      seconds(f.reclaim.p50Ms),
      seconds(f.reclaim.maxMs),
      f.violations.length,
    ]
  })
  const sum = (i: number) => rows.reduce((n, r) => n + (r[i] as number), 0)
  const all = report.fleets.flatMap((f) => f.reclaim.samplesMs).sort((a, b) => a - b)
  const p50 = all.length === 0 ? null : all[Math.ceil(all.length / 2) - 1]!
  rows.push(["all", sum(1), sum(2), sum(3), sum(4), sum(5), sum(6), sum(7), sum(8), sum(9), seconds(p50), seconds(all.at(-1) ?? null), sum(12)])

  const byKind = new Map<string, Record<string, number>>()
  for (const f of report.fleets) {
    for (const [kind, statuses] of Object.entries(f.byKind)) {
      const row = byKind.get(kind) ?? {}
      for (const [status, n] of Object.entries(statuses)) row[status] = (row[status] ?? 0) + n
      byKind.set(kind, row)
    }
  }
  const kindRows = [...byKind].sort((a, b) => a[0].localeCompare(b[0])).map(([kind, st]) => {
    const total = Object.values(st).reduce((a, b) => a + b, 0)
    return [kind, total, st.succeeded ?? 0, st.failed ?? 0, st.revoked ?? 0, total - (st.succeeded ?? 0) - (st.failed ?? 0) - (st.revoked ?? 0)]
  })

  const ct = report.cloudTasks
  const fs = ct.front
  const sawNode: Record<string, number> = {}
  for (const f of report.fleets) for (const [state, n] of Object.entries(f.bodies.sawNode)) sawNode[state] = (sawNode[state] ?? 0) + n
  const retries: Record<string, number> = {}
  for (const f of report.fleets) for (const [tag, n] of Object.entries(f.retries)) retries[tag] = (retries[tag] ?? 0) + n
  const revokes = report.fleets.map((f) => f.revokes)
  const totalOf = (k: keyof (typeof revokes)[number]) => revokes.reduce((n, r) => n + r[k], 0)
  const reclaimed = report.fleets.map((f) => `${names[f.fleet] ?? f.fleet} ${f.reclaim.held} held, ${f.reclaim.measured} claimed again, ${f.reclaim.neverReclaimed} never (revoked or failed first)`)
  const violations = report.fleets.flatMap((f) => f.violations.map((v) => ({ ...v, fleet: f.fleet })))
  const crashes = report.fleets.flatMap((f) => f.unexpectedExits)
  const s = report.seconds
  const lines = [
    `== soak: seed ${report.seed}, ${report.starts.planned} runs in ${s.total.toFixed(0)} s (set-up ${s.setup.toFixed(0)}, load ${s.load.toFixed(0)}, drain ${s.drain.toFixed(0)}) ==`,
    table(["fleet", "runs", "succeeded", "failed", "revoked", "not final", "kills", "crashes", "bodies", "re-run", "reclaim p50", "reclaim max", "violations"], rows),
    "",
    table(["workflow", "runs", "succeeded", "failed", "revoked", "not final"], kindRows),
    "",
    `PostgreSQL: restarted ${report.postgres.restarts}× (down ${seconds(report.postgres.downMs)}).  Starts: ${report.starts.started}/${report.starts.planned} (${report.starts.failed} failed).` +
      `  Processes started: ${report.fleets.map((f) => `${f.fleet} ${f.processes}`).join(", ")}` +
      (report.options.taskgraphFaults === "" ? "." : `; fault points ${report.options.taskgraphFaults}: ${report.fleets.map((f) => `${f.fleet} ${f.faultCrashes} crashes`).join(", ")}.`),
    `Bodies saw their node as they began: ${Object.entries(sawNode).sort((a, b) => b[1] - a[1]).map(([state, n]) => `${state} ${n}`).join(", ")}.`,
    `Cloud Tasks: ${ct.emulator.deliveries} deliveries for ${ct.emulator.dispatches} attempts (${ct.emulator.deliveries - ct.emulator.dispatches} duplicated), ` +
      `CreateTask UNAVAILABLE ×${ct.injected.unavailable} injected, answers ${Object.entries(ct.emulator.responses).map(([k, v]) => `${k}×${v}`).join(" ")}; ` +
      `front: ${fs.rejected503} × 503 injected, ${fs.lost2xx} × 2xx lost, ${fs.noBackend} × no live app, ${fs.upstreamErrors} upstream errors.`,
    `Revokes: ${totalOf("requested")} requested: ${totalOf("revoked")} revoked, ${totalOf("alreadyFinished")} already finished, ${totalOf("failed")} unanswered; ` +
      `${totalOf("lateStarts")} bodies began just after a revoke they were claimed before (interrupted by it).`,
    `Retries recorded: ${Object.entries(retries).sort((a, b) => b[1] - a[1]).map(([tag, n]) => `${tag} ${n}`).join(", ") || "none"}.`,
    ...report.fleets.flatMap((f) => Object.entries(f.retryMessages).map(([tag, text]) => `  first ${tag} (${f.fleet}): ${text}`)),
    `Reclaim (SIGKILL → a cut-off try's node claimed again): ${reclaimed.join("; ")}. Lease ${report.options.leaseSeconds} s.`,
  ]
  if (crashes.length > 0) {
    lines.push(`Crashes (processes that exited unasked):`)
    for (const c of crashes.slice(0, 10)) lines.push(`  ${c.fleet}[${c.slot}] pid ${c.pid} (${c.signal ?? c.code}): ${c.tail.slice(-3).join(" / ")}`)
  }
  if (!report.drained) lines.push(`NOT DRAINED: runs were still open after ${report.options.drainSeconds} s.`)
  if (report.aborted) lines.push("ABORTED before the plan was done.")
  lines.push(report.clean ? "Verdict: clean." : `Verdict: NOT clean: ${report.violations} violations.`)
  for (const v of violations.slice(0, 30)) lines.push(`  [${v.fleet}] ${v.rule}: ${v.run ?? ""}${v.node === undefined ? "" : ` ${v.node}`}: ${v.detail}`)
  if (violations.length > 30) lines.push(`  … ${violations.length - 30} more in the JSON`)
  return lines.join("\n")
}

/** Writes the report as JSON (directories created); returns the path. */
export const writeReport = async (report: SoakReport, file: string): Promise<string> => {
  const target = path.resolve(file)
  await mkdir(path.dirname(target), { recursive: true })
  await writeFile(target, `${JSON.stringify(report, null, 2)}\n`)
  return target
}
