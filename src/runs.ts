/**
 * `taskgraph runs …`: operate on stored runs from a shell. The graph of every run is stored, so
 * no workflow code is needed here: `ls` lists runs (filtered, newest first, a page at a time) or
 * counts them by status, `show` prints a run (with `watch`, again at every change until it is
 * over), `revoke` revokes it (or a node and what follows), `retry` retries a failed run from its
 * failed nodes, `resume` puts its parked nodes back to ready. Callbacks still queued in Cloud
 * Tasks find nothing to do when they arrive; retried and resumed nodes are dispatched by the
 * deployment (its workers' LISTEN or poll, or its sweeper). With `json`, each prints one JSON
 * document on stdout instead: the run as `status()` returns it, the page or counts as the run
 * history returns them, or the outcome of the action (its `_tag` says which).
 */
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import type { ListQuery, RunCounts, RunFilter, RunPage, RunSummary } from "../engine/History.ts"
import { InvalidHistoryQuery, runStatuses } from "../engine/History.ts"
import type { RunView } from "../engine/RunView.ts"
import { UsageError } from "./cli/output.ts"
import { runHistory } from "./history.ts"
import { createRuntime, type Runtime } from "./Runtime.ts"

const withOrm = async <A>(url: string, use: (orm: MikroORM) => Promise<A>): Promise<A> => {
  const orm = await MikroORM.init(defineConfig({ clientUrl: url, entities: [], discovery: { warnWhenNoEntities: false }, ensureDatabase: false, debug: false }))
  try {
    return await use(orm)
  } finally {
    await orm.close()
  }
}

const withRuntime = <A>(url: string, use: (tg: Runtime) => Promise<A>): Promise<A> =>
  withOrm(url, async (orm) => {
    const tg = await createRuntime({ orm, workflows: [], worker: false, sweeper: false })
    try {
      return await use(tg)
    } finally {
      await tg.close()
    }
  })

/** A filter the history refuses is a mistake on the command line: shown with the usage (exit 2). */
const asUsage = async <A>(read: () => Promise<A>): Promise<A> => {
  try {
    return await read()
  } catch (error) {
    if (error instanceof InvalidHistoryQuery) throw new UsageError(error.message)
    throw error
  }
}

/** A run as a table a person reads at a glance: the run's error with its stack, then one line per node. */
export const formatRun = (run: RunView): string => {
  const lines = [`run ${run.id}  workflow ${run.workflow}  status ${run.status}`]
  if (run.error !== null) {
    lines.push(`error ${run.error.tag}: ${run.error.message}`)
    // a thrown error's stack, below its message (its first line repeats the message)
    const stack = run.error.stack?.split("\n").slice(1).filter((l) => l.trim() !== "") ?? []
    for (const line of stack) lines.push(`  ${line.trim()}`)
  }
  lines.push("")
  for (const node of run.nodes) {
    const detail = node.progress !== null
      ? `${node.progress.rows}/${node.progress.estimate} rows`
      : node.error !== null && node.state !== "succeeded"
      ? `${node.error.tag}: ${node.error.message.split("\n")[0]}`
      : JSON.stringify(node.output) ?? ""
    lines.push(`  ${node.id.padEnd(28)} ${node.state.padEnd(10)} try ${String(node.attempt).padEnd(3)} ${detail.slice(0, 100)}`)
  }
  return lines.join("\n")
}

/** How a command prints: for a person (default), or one JSON document on stdout. */
export interface PrintOptions {
  readonly json?: boolean
}

const printJson = (value: unknown) => console.log(JSON.stringify(value, null, 2))

// --- runs ls -----------------------------------------------------------------------------------

/** A span of milliseconds as a person reads it: 840ms, 12.4s, 3m05s, 2h07m, 3d04h. */
export const formatDuration = (ms: number): string => {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  const s = Math.floor(ms / 1000)
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, "0")}h`
}

/** An instant to the second, in UTC: 2026-12-01 15:23:58. */
const instant = (date: Date): string => date.toISOString().slice(0, 19).replace("T", " ")

/** A run's node rows by state, the states in the engine's order: "3 succeeded, 1 failed". */
const nodeCounts = (nodes: RunSummary["nodes"]): string =>
  Object.entries(nodes).filter(([, n]) => (n ?? 0) > 0).map(([state, n]) => `${n} ${state}`).join(", ")

const oneLine = (text: string, max: number): string => {
  const line = text.split("\n")[0] ?? ""
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

/**
 * A page of runs as a table: id, workflow, status, created (UTC), duration (to its end, or so far
 * with a `+` while it is not over), its node rows by state, and its error's first line.
 */
const formatRunPage = (page: RunPage, now: Date = new Date()): string => {
  if (page.runs.length === 0) return "no runs"
  const header = ["RUN", "WORKFLOW", "STATUS", "CREATED (UTC)", "DURATION", "NODES", "ERROR"] as const
  const rows = page.runs.map((run) => [
    run.id,
    run.workflow,
    run.status,
    instant(run.createdAt),
    run.finishedAt === null ? `${formatDuration(now.getTime() - run.createdAt.getTime())}+` : formatDuration(run.finishedAt.getTime() - run.createdAt.getTime()),
    nodeCounts(run.nodes),
    run.error === null ? "" : oneLine(`${run.error.tag}: ${run.error.message}`, 80),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd()
  const lines = [line(header), ...rows.map(line)]
  lines.push("", page.next === null ? `${page.runs.length} run(s)` : `${page.runs.length} run(s); more: --cursor ${page.next}`)
  return lines.join("\n")
}

/** Counts by status, every status listed (zero included), then the total. */
const formatRunCounts = (counts: RunCounts): string => {
  const width = Math.max(...runStatuses.map((s) => s.length), "total".length)
  return [
    ...runStatuses.map((status) => `${status.padEnd(width)}  ${counts.byStatus[status]}`),
    `${"total".padEnd(width)}  ${counts.total}`,
  ].join("\n")
}

/** `runs ls`: a page of runs matching `query`, newest first, and the cursor of the next one. */
export const listRuns = (url: string, query: ListQuery, print: PrintOptions = {}): Promise<number> =>
  withOrm(url, async (orm) => {
    const page = await asUsage(() => runHistory(orm).list(query))
    if (print.json === true) printJson(page)
    else console.log(formatRunPage(page))
    return 0
  })

/** `runs ls --counts`: how many runs match `filter`, by status. */
export const countRuns = (url: string, filter: RunFilter, print: PrintOptions = {}): Promise<number> =>
  withOrm(url, async (orm) => {
    const counts = await asUsage(() => runHistory(orm).counts(filter))
    if (print.json === true) printJson(counts)
    else console.log(formatRunCounts(counts))
    return 0
  })

export const showRun = (url: string, run: string, print: PrintOptions = {}): Promise<number> =>
  withRuntime(url, async (tg) => {
    const view = await tg.status(run)
    if (view === null) {
      if (print.json === true) printJson({ _tag: "NotFound", run, message: `no run ${run}` })
      else console.error(`taskgraph runs show: no run ${run}`)
      return 1
    }
    if (print.json === true) printJson(view)
    else console.log(formatRun(view))
    return 0
  })

// --- runs show --watch -------------------------------------------------------------------------

/** A run stops changing by itself once it is over, or parked (until someone resumes it). */
const settled = (status: RunView["status"]): boolean => status === "succeeded" || status === "failed" || status === "revoked" || status === "parked"

/** `runs show --watch`'s exit code for the status the run settled in: 0 succeeded, 1 failed or revoked, 3 parked. */
const watchExitCode = (status: RunView["status"]): number => (status === "succeeded" ? 0 : status === "parked" ? 3 : 1)

export interface WatchOptions extends PrintOptions {
  /** How often the run is read (milliseconds). */
  readonly intervalMs: number
  /** Clear the screen and redraw (a terminal), instead of printing each change below the last. */
  readonly redraw: boolean
}

/**
 * Reads the run every interval and prints it when it changed (the first read always), until it is
 * over or parked. On a terminal each print replaces the last; in a pipe the prints follow each
 * other, a blank line between, so the output is a log of the run's changes. With `json`, each
 * change is one line of JSON (the run as `status()` returns it).
 */
export const watchRun = (url: string, run: string, options: WatchOptions): Promise<number> =>
  withRuntime(url, async (tg) => {
    let last: string | undefined
    for (;;) {
      const view = await tg.status(run)
      if (view === null) {
        if (options.json === true) console.log(JSON.stringify({ _tag: "NotFound", run, message: `no run ${run}` }))
        else console.error(`taskgraph runs show: no run ${run}`)
        return 1
      }
      const text = options.json === true ? JSON.stringify(view) : formatRun(view)
      if (text !== last) {
        if (options.json === true) console.log(text)
        else if (options.redraw) process.stdout.write(`\x1b[H\x1b[2J${text}\n\nwatching every ${formatDuration(options.intervalMs)}; Ctrl-C stops\n`)
        else console.log(last === undefined ? text : `\n${text}`)
        last = text
      }
      if (settled(view.status)) return watchExitCode(view.status)
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs))
    }
  })

export const retryRun = (url: string, run: string, print: PrintOptions = {}): Promise<number> =>
  withRuntime(url, async (tg) => {
    const outcome = await tg.retry(run)
    if (print.json === true) {
      printJson(outcome)
      return outcome._tag === "Retried" ? 0 : 1
    }
    switch (outcome._tag) {
      case "Retried":
        console.log(`retried ${outcome.nodes.join(", ")} of run ${run}: ${outcome.ready} node(s) ready, the run is running`)
        return 0
      case "NotFailed":
      case "NotFound":
        console.error(`taskgraph runs retry: ${outcome.message}`)
        return 1
    }
  })

export const revokeRun = (url: string, run: string, options: { node?: string; reason?: string }, print: PrintOptions = {}): Promise<number> =>
  withRuntime(url, async (tg) => {
    const outcome = await tg.revoke(run, options)
    if (print.json === true) {
      printJson(outcome)
      return outcome._tag === "NotFound" ? 1 : 0
    }
    switch (outcome._tag) {
      case "Revoked":
        console.log(`revoked ${outcome.nodes} node(s) of run ${run}${outcome.runRevoked ? "; the run is revoked" : ""}`)
        return 0
      case "AlreadyFinished":
        console.log(`run ${run} already finished (${outcome.status}): nothing to revoke`)
        return 0
      case "NotFound":
        console.error(`taskgraph runs revoke: ${outcome.message}`)
        return 1
    }
  })

export const resumeRun = (url: string, run: string, options: { node?: string }, print: PrintOptions = {}): Promise<number> =>
  withRuntime(url, async (tg) => {
    const outcome = await tg.resume(run, options)
    if (print.json === true) {
      printJson(outcome)
      return outcome._tag === "Resumed" ? 0 : 1
    }
    switch (outcome._tag) {
      case "Resumed":
        console.log(`resumed ${outcome.nodes.join(", ")} of run ${run}; the run is ${outcome.status}`)
        return 0
      case "NotParked":
      case "NotFound":
        console.error(`taskgraph runs resume: ${outcome.message}`)
        return 1
    }
  })
