/**
 * `taskgraph runs …`: operate on stored runs from a shell. The graph of every run is stored, so
 * no workflow code is needed here: `show` prints a run, `revoke` revokes it (or a node and what
 * follows), `resume` puts its parked nodes back to ready. Callbacks still queued in Cloud Tasks
 * find nothing to do when they arrive; resumed nodes are dispatched by the deployment (its
 * workers' LISTEN or poll, or its sweeper). With `json`, each prints one JSON document on stdout
 * instead: the run as `status()` returns it, or the outcome of the action (its `_tag` says which).
 */
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import type { RunView } from "../engine/RunView.ts"
import { createRuntime, type Runtime } from "./Runtime.ts"

const withRuntime = async <A>(url: string, use: (tg: Runtime) => Promise<A>): Promise<A> => {
  const orm = await MikroORM.init(defineConfig({ clientUrl: url, entities: [], discovery: { warnWhenNoEntities: false }, ensureDatabase: false, debug: false }))
  try {
    const tg = await createRuntime({ orm, workflows: [], worker: false, sweeper: false })
    try {
      return await use(tg)
    } finally {
      await tg.close()
    }
  } finally {
    await orm.close()
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
