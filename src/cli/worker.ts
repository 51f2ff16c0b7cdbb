/**
 * `taskgraph worker`: the Postgres worker for the workflows of the application's module, in the
 * foreground until SIGTERM or SIGINT, with its Pub/Sub pull subscriptions beside it. The module
 * exports the options `createRuntime` takes, without `orm` (the worker connects to the database
 * itself, as `taskgraph runs` does):
 *
 * ```ts
 * // worker.ts
 * export const taskgraph = { workflows: [checkout], subscribers: [onOrder], services: AppLive }
 * ```
 *
 * `taskgraph worker --module worker.ts --subscription orders` then runs the checkout workflow's
 * nodes and pulls `<prefix>--orders` (with `--sync`, created first if missing). On the signal it stops pulling (handlers in flight finish
 * and ack within their grace), then closes the runtime (steps in flight finish within the
 * worker's grace, the rest are given back), and exits 0.
 *
 * Loaded only when the command runs; the Pub/Sub client only when it pulls.
 */
import { existsSync } from "node:fs"
import path from "node:path"
import { pathToFileURL } from "node:url"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Duration } from "effect"
import type { WorkerOptions } from "../../adapters/postgres/Worker.ts"
import type { PubSubSettings } from "../../adapters/pubsub/PubSubSpec.ts"
import { createRuntime, type Runtime, type RuntimeOptions } from "../Runtime.ts"
import { UsageError } from "./output.ts"
import { untilSignal } from "./signals.ts"

/**
 * What the application's module exports for `taskgraph worker` and `taskgraph dev`:
 * `createRuntime`'s options without `orm` (the command connects to the database itself).
 *
 * ```ts
 * import type { TaskgraphModule } from "taskgraph"
 * export const taskgraph: TaskgraphModule = { workflows: [checkout], services: AppLive }
 * ```
 */
export type TaskgraphModule<R = unknown> = Omit<RuntimeOptions<R>, "orm">

export interface LoadedModule {
  /** As given on the command line, for messages. */
  readonly module: string
  readonly exportName: string
  readonly options: TaskgraphModule
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

const shape = "export const taskgraph = { workflows: [...], subscribers?: [...], schedules?: [...], services?, defaults? } (createRuntime's options without orm)"

/**
 * Imports the module (a path from the current directory) and takes its runtime options, from
 * `exportName` or else `taskgraph`, then `default`. A module that has none, or options the worker
 * cannot run (an `orm` of their own, eager mode), or `subscriptions` no subscriber of the module
 * pulls, is a `UsageError` naming what is wrong.
 */
export const loadWorkerModule = async (module: string, exportName: string | undefined, subscriptions: ReadonlyArray<string>): Promise<LoadedModule> => {
  const absolute = path.resolve(module)
  if (!existsSync(absolute)) throw new UsageError(`--module ${module}: no such file (${absolute})`)
  if (/\.[mc]?ts$/.test(absolute) && !(process.features as { typescript?: unknown }).typescript) {
    throw new UsageError(`--module ${module}: a TypeScript module needs Node 24 (or 22 with type stripping); give the built .js`)
  }
  const namespace = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>
  const name = exportName ?? ("taskgraph" in namespace ? "taskgraph" : "default")
  const exported = namespace[name]
  if (exported === undefined) {
    const names = Object.keys(namespace)
    throw new UsageError(
      exportName === undefined
        ? `${module} exports neither "taskgraph" nor a default (it exports: ${names.join(", ") || "nothing"}); ${shape}`
        : `${module} has no export "${exportName}" (it exports: ${names.join(", ") || "nothing"})`,
    )
  }
  const isOptions = isObject(exported) && ["workflows", "subscribers", "schedules"].some((key) => Array.isArray(exported[key]))
    && ["workflows", "subscribers", "schedules"].every((key) => exported[key] === undefined || Array.isArray(exported[key]))
  if (!isOptions) throw new UsageError(`${module}: export "${name}" is not runtime options; ${shape}`)
  if (exported.orm !== undefined) throw new UsageError(`${module}: export "${name}" has an orm: leave it out, the worker connects to --url or $DATABASE_URL itself`)
  if (exported.eager === true) throw new UsageError(`${module}: export "${name}" is in eager mode, which runs no worker`)
  const options = { ...exported, workflows: exported.workflows ?? [] } as unknown as TaskgraphModule
  const known = (options.subscribers ?? []).map((s) => s.subscription)
  const unknown = subscriptions.filter((s) => !known.includes(s))
  if (unknown.length > 0) {
    throw new UsageError(
      `no subscriber in ${module} for --subscription ${unknown.map((s) => `"${s}"`).join(", ")} (its subscribers: ${known.map((s) => `"${s}"`).join(", ") || "none"})`,
    )
  }
  return { module, exportName: name, options }
}

export interface WorkerRun {
  readonly url: string
  /** Serve only these queues (empty: every queue). */
  readonly queues: ReadonlyArray<string>
  readonly subscriptions: ReadonlyArray<string>
  readonly concurrency?: number
  /** How long steps and pulled messages in flight may finish once stopping (default: the module's, else the workers'). */
  readonly shutdownGraceMs?: number
  /** Where the subscriptions are, when there are any. */
  readonly pubsub?: {
    readonly settings: PubSubSettings
    readonly emulator: string | undefined
    /** Provision the pulled subscriptions and their topics before pulling. */
    readonly sync: boolean
  }
}

/** A module's runtime on its database, its worker running (and its pull worker, when it pulls). */
export interface OpenWorker {
  readonly runtime: Runtime
  /** What it runs, for a person (several lines). */
  readonly banner: string
  /** Stops pulling, then closes the runtime (steps in flight finish within the grace) and the pool; prints what it pulled. */
  readonly stop: () => Promise<void>
}

/**
 * Connects to `run.url` and starts the module's runtime with its Postgres worker (woken by the
 * store's notices), then the pull worker when it pulls. `taskgraph worker` and `taskgraph dev`
 * both run a module this way.
 */
export const openWorker = async (loaded: LoadedModule, run: WorkerRun): Promise<OpenWorker> => {
  const { options } = loaded
  const own = typeof options.worker === "object" ? options.worker : {}
  const worker: WorkerOptions = {
    ...own,
    // woken by the store's notices, not only by polling
    listenUrl: own.listenUrl ?? run.url,
    ...(run.queues.length === 0 ? {} : { queues: run.queues }),
    ...(run.concurrency === undefined ? {} : { concurrency: run.concurrency }),
    ...(run.shutdownGraceMs === undefined ? {} : { shutdownGrace: Duration.millis(run.shutdownGraceMs) }),
  }
  // the signals are the command's: the runtime must not end the process on them
  const { shutdownOnSignals: _ignored, ...rest } = options
  const orm = await MikroORM.init(defineConfig({ clientUrl: run.url, entities: [], discovery: { warnWhenNoEntities: false }, ensureDatabase: false, debug: false }))
  let tg: Runtime | undefined
  try {
    tg = await createRuntime({ ...rest, orm, worker })
    const pulling = run.pubsub === undefined || run.subscriptions.length === 0 ? undefined : await startPulling(tg, run.pubsub, run)
    const runtime = tg
    let stopped: Promise<void> | undefined
    const stop = () =>
      stopped ??= (async () => {
        try {
          // no new messages first, then the runtime (the pull handlers' starts need it)
          if (pulling !== undefined) {
            try {
              await pulling.worker.stop()
              const { received, acked, nacked, dead } = pulling.worker.stats
              console.log(`pulled ${received} message(s): ${acked} acknowledged (${dead} dead), ${nacked} nacked`)
            } finally {
              await pulling.client.close()
            }
          }
        } finally {
          try {
            await runtime.close()
          } finally {
            await orm.close()
          }
        }
      })()
    return { runtime, banner: banner(loaded, run, worker, pulling?.worker.subscriptions ?? []), stop }
  } catch (error) {
    await tg?.close().catch(() => undefined)
    await orm.close().catch(() => undefined)
    throw error
  }
}

/** Runs until SIGTERM or SIGINT, then stops gracefully; resolves to the exit code (0). */
export const runWorker = async (loaded: LoadedModule, run: WorkerRun): Promise<number> => {
  const signal = untilSignal()
  try {
    const open = await openWorker(loaded, run)
    try {
      console.log(`taskgraph worker: ${open.banner}\nSIGTERM or Ctrl-C stops it.`)
      const received = await signal.received
      console.log(`${received}: stopping the worker`)
    } finally {
      await open.stop()
    }
    console.log("taskgraph worker: stopped")
    return 0
  } finally {
    signal.remove()
  }
}

const startPulling = async (tg: Runtime, pubsub: NonNullable<WorkerRun["pubsub"]>, run: WorkerRun) => {
  const [{ emulatorPubSubClient, pubSubClient }, { startPullWorker }] = await Promise.all([
    import("../../adapters/pubsub/Client.ts"),
    import("../../adapters/pubsub/PullWorker.ts"),
  ])
  const { settings } = pubsub
  const client = pubsub.emulator === undefined ? pubSubClient({ projectId: settings.project }) : emulatorPubSubClient(pubsub.emulator, settings.project)
  try {
    const worker = await startPullWorker(tg, {
      client,
      prefix: settings.prefix,
      subscriptions: run.subscriptions,
      ...(pubsub.sync ? { sync: settings } : {}),
      ...(run.concurrency === undefined ? {} : { concurrency: run.concurrency }),
      ...(run.shutdownGraceMs === undefined ? {} : { shutdownGrace: Duration.millis(run.shutdownGraceMs) }),
    })
    return { client, worker }
  } catch (error) {
    await client.close()
    throw error
  }
}

const banner = (loaded: LoadedModule, run: WorkerRun, worker: WorkerOptions, pulled: ReadonlyArray<string>): string => {
  const { options } = loaded
  const workflows = [
    ...options.workflows.map((w) => w.name),
    ...(options.subscribers ?? []).map((s) => s.workflow.name),
    ...(options.schedules ?? []).map((s) => s.workflow.name),
  ]
  const unique = [...new Set(workflows)]
  return [
    `${unique.length} workflow(s) from ${loaded.module} (export "${loaded.exportName}"): ${unique.join(", ") || "none"}`,
    `  queues:      ${worker.queues === undefined ? "every queue" : worker.queues.join(", ")}`,
    `  concurrency: ${worker.concurrency ?? 8} node(s) at once`,
    ...(options.schedules !== undefined && options.schedules.length > 0 ? [`  schedules:   ${options.schedules.length} (fired by one worker of those sharing the database)`] : []),
    ...(pulled.length === 0 ? [] : [`  pulling:     ${pulled.join(", ")}${run.concurrency === undefined ? "" : ` (${run.concurrency} message(s) at once)`}`]),
  ].join("\n")
}
