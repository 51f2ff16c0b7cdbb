/**
 * The `taskgraph` command, on `effect/cli`: typed flags and arguments, `--help` on every command
 * (and `taskgraph help <command>`), `--version`, `--completions bash|zsh|fish|powershell`.
 * `main(argv)` returns the exit code: 0 ok, 1 failure, 2 usage; src/bin.ts is the executable.
 * A command loads only the modules it uses, inside its handler: printing help, or migrating,
 * loads neither the Google clients nor the emulators. Every command that prints a result takes
 * `--json` and then prints one JSON document on stdout.
 */
import { existsSync, readFileSync } from "node:fs"
import { Cause, Effect, Exit, Option } from "effect"
import { Argument, CliError, Command, Flag } from "effect/cli"
import { DefinitionError } from "../dsl/DefinitionError.ts"
import { type DurationInput, durationMillis } from "../dsl/Time.ts"
import { cliEnvironment, ExitCode, UsageError, usageFailure } from "./cli/output.ts"
import { announcingJobs, announcingPubSub, announcingQueues } from "./cli/progress.ts"

// --- shared flags ----------------------------------------------------------------------------

const url = Flag.String("url").pipe(
  Flag.withMetavar("URL"),
  Flag.withDescription("the PostgreSQL URL (default: $DATABASE_URL)"),
  Flag.optional,
)
const json = Flag.Boolean("json").pipe(Flag.withDescription("print the result as one JSON document on stdout"), Flag.withDefault(false))
const config = Flag.String("config").pipe(
  Flag.withMetavar("FILE"),
  Flag.withDescription("the configuration file (default: taskgraph.config.ts or taskgraph.config.json here)"),
  Flag.optional,
)
const dryRun = Flag.Boolean("dry-run").pipe(Flag.withDescription("print the differences only; change nothing"), Flag.withDefault(false))
const emulatorFlag = (variable: string) =>
  Flag.String("emulator").pipe(
    Flag.withMetavar("HOST:PORT"),
    Flag.withDescription(`talk to an emulator at this address instead of Google (default: $${variable})`),
    Flag.optional,
  )
const runId = Argument.String("run").pipe(Argument.withDescription("the run's id"))
const node = (what: string) => Flag.String("node").pipe(Flag.withMetavar("NODE"), Flag.withDescription(what), Flag.optional)

const some = <A>(option: Option.Option<A>): A | undefined => Option.getOrUndefined(option)

/** A duration flag's text: a bare number is seconds, else an Effect duration ("500 millis", "2 minutes"). */
const durationFlag = (flag: string, text: string, bounds: { readonly positive?: boolean } = {}): number => {
  const input: DurationInput = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text.trim()) : (text.trim() as DurationInput)
  try {
    return durationMillis(`--${flag}`, input, bounds)
  } catch (error) {
    if (error instanceof DefinitionError) throw new UsageError(`${error.message} (a number of seconds, or e.g. "500 millis", "2 minutes")`)
    throw error
  }
}

/** An instant flag's text: an ISO 8601 date or date and time ("2026-12-01", "2026-12-01T15:00:00Z"). */
const instantFlag = (flag: string, text: string): Date => {
  const date = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim()) ? new Date(text.trim()) : new Date(Number.NaN)
  if (Number.isNaN(date.getTime())) throw new UsageError(`--${flag} must be an ISO 8601 date or instant (2026-12-01, 2026-12-01T15:00:00Z), got "${text}"`)
  return date
}

// --- running a handler -------------------------------------------------------------------------

/**
 * A command's handler: the Promise it runs resolves to the exit code (0 or 1); a `UsageError` it
 * throws is shown with the command's help (exit 2); anything else it throws ends the command
 * with exit 1, its message on stderr (src/bin.ts).
 */
const handler = <I>(path: ReadonlyArray<string>, run: (input: I) => Promise<number>) => (input: I) =>
  Effect.tryPromise({ try: () => run(input), catch: (error) => error }).pipe(
    Effect.flatMap((code) => ExitCode.use((exit) =>
      Effect.sync(() => {
        exit.code = code
      })
    )),
    Effect.catch((error) => Effect.fail(error instanceof UsageError ? usageFailure(["taskgraph", ...path], error.message) : error)),
  )

const databaseUrl = (given: Option.Option<string>): { readonly url: string; readonly source: string } => {
  const url = some(given) ?? process.env.DATABASE_URL
  if (url === undefined || url === "") throw new UsageError("give --url or set DATABASE_URL")
  return { url, source: Option.isSome(given) ? "--url" : "DATABASE_URL" }
}

/**
 * Runs a command on the database: its URL checked first (a malformed one is refused before
 * anything connects) and a failed connect named: host, port, database and where the URL came from.
 */
const onDatabase = async (given: Option.Option<string>, run: (url: string, source: string) => Promise<number>): Promise<number> => {
  const { url, source } = databaseUrl(given)
  const { withDatabaseErrors } = await import("../adapters/postgres/DatabaseUrl.ts")
  return withDatabaseErrors(url, source, () => run(url, source))
}

const configFile = async (given: Option.Option<string>): Promise<string> => {
  const { defaultConfigFiles } = await import("./ConfigFile.ts")
  if (Option.isSome(given)) return given.value
  const found = defaultConfigFiles.find((file) => existsSync(file))
  if (found === undefined) throw new UsageError(`no --config given and no ${defaultConfigFiles.join(" or ")} here`)
  return found
}

const cloudTasksSettings = async (file: string) => {
  const { loadConfig } = await import("./ConfigFile.ts")
  const loaded = await loadConfig(file)
  if (loaded.cloudTasks === undefined) throw new UsageError(`${file} has no "cloudTasks" section`)
  return { ...loaded.cloudTasks, queues: loaded.cloudTasks.queues ?? [] }
}

const emulatorAddress = (given: Option.Option<string>, variable: string): string | undefined => {
  const address = some(given) ?? process.env[variable]
  return address === undefined || address === "" ? undefined : address
}

const printJson = (value: unknown) => console.log(JSON.stringify(value, null, 2))

/** Each change as it is made, then the summary; with --json, only the summary (one document). */
const progress = (json: boolean) => (json ? () => {} : (line: string) => console.log(line))

// --- the commands ------------------------------------------------------------------------------

const migrate = Command.make(
  "migrate",
  { url, json },
  handler(["migrate"], (input) =>
    onDatabase(input.url, async (databaseUrl, source) => {
      const { migrate } = await import("../adapters/postgres/migrate.ts")
      const applied = await migrate(databaseUrl, undefined, { source })
      if (input.json) printJson({ applied })
      else console.log(applied.length === 0 ? "taskgraph migrate: up to date" : `taskgraph migrate: applied ${applied.join(", ")}`)
      return 0
    })),
).pipe(
  Command.withDescription("Apply the store's migrations to URL (default: $DATABASE_URL). Safe to run again, and from several processes at once."),
  Command.withShortDescription("apply the store's migrations"),
)

const runsShow = Command.make(
  "show",
  {
    run: runId,
    watch: Flag.Boolean("watch").pipe(Flag.withDescription("print the run again at every change until it is over or parked"), Flag.withDefault(false)),
    interval: Flag.String("interval").pipe(
      Flag.withMetavar("DURATION"),
      Flag.withDescription("with --watch: how often to read the run (seconds, or e.g. \"500 millis\"; default 1)"),
      Flag.optional,
    ),
    url,
    json,
  },
  handler(["runs", "show"], async (input) => {
    const interval = some(input.interval)
    if (interval !== undefined && !input.watch) throw new UsageError("--interval is for --watch")
    const intervalMs = interval === undefined ? 1000 : durationFlag("interval", interval, { positive: true })
    return onDatabase(input.url, async (databaseUrl) => {
      const { showRun, watchRun } = await import("./runs.ts")
      if (!input.watch) return showRun(databaseUrl, input.run, { json: input.json })
      return watchRun(databaseUrl, input.run, { json: input.json, intervalMs, redraw: !input.json && process.stdout.isTTY === true })
    })
  }),
).pipe(
  Command.withDescription(
    [
      "Print a run: its status and every node's state, attempt and result (default URL: $DATABASE_URL).",
      "With --watch, read it every DURATION (default 1 s) and print it at every change until it is over",
      "or parked: on a terminal each print replaces the last; in a pipe each change follows the last",
      "(with --json, one JSON line per change). Exit codes with --watch: 0 succeeded, 1 failed or",
      "revoked (or no such run), 3 parked.",
    ].join("\n"),
  ),
  Command.withShortDescription("print a run and its nodes (--watch: follow it)"),
)

const runsLs = Command.make(
  "ls",
  {
    workflow: Flag.String("workflow").pipe(Flag.withMetavar("W"), Flag.withDescription("runs of this workflow only (repeatable)"), Flag.atLeast(0)),
    status: Flag.String("status").pipe(
      Flag.withMetavar("S"),
      Flag.withDescription("runs in this status only: running, failing, parked, succeeded, failed, revoked (repeatable)"),
      Flag.atLeast(0),
    ),
    from: Flag.String("from").pipe(Flag.withMetavar("ISO"), Flag.withDescription("runs created at or after this instant (2026-12-01, 2026-12-01T15:00:00Z)"), Flag.optional),
    to: Flag.String("to").pipe(Flag.withMetavar("ISO"), Flag.withDescription("runs created before this instant"), Flag.optional),
    key: Flag.String("key").pipe(Flag.withMetavar("K"), Flag.withDescription("the run started with this idempotency key"), Flag.optional),
    error: Flag.String("error").pipe(Flag.withMetavar("TEXT"), Flag.withDescription("runs whose error message contains TEXT (case-insensitive)"), Flag.optional),
    limit: Flag.Int("limit").pipe(Flag.withMetavar("N"), Flag.withDescription("runs per page, 1 to 500 (default 50)"), Flag.optional),
    cursor: Flag.String("cursor").pipe(Flag.withMetavar("C"), Flag.withDescription("the next page: the cursor the previous page printed"), Flag.optional),
    counts: Flag.Boolean("counts").pipe(Flag.withDescription("print how many runs match, by status, instead of the runs"), Flag.withDefault(false)),
    url,
    json,
  },
  handler(["runs", "ls"], async (input) => {
    const from = some(input.from)
    const to = some(input.to)
    const key = some(input.key)
    const errorText = some(input.error)
    const filter = {
      ...(input.workflow.length === 0 ? {} : { workflow: input.workflow }),
      ...(input.status.length === 0 ? {} : { status: input.status as ReadonlyArray<never> }),
      ...(from === undefined ? {} : { createdFrom: instantFlag("from", from) }),
      ...(to === undefined ? {} : { createdTo: instantFlag("to", to) }),
      ...(key === undefined ? {} : { idempotencyKey: key }),
      ...(errorText === undefined ? {} : { errorText }),
    }
    const limit = some(input.limit)
    const cursor = some(input.cursor)
    if (input.counts && (limit !== undefined || cursor !== undefined)) throw new UsageError("--counts counts every matching run: --limit and --cursor do not apply")
    return onDatabase(input.url, async (databaseUrl) => {
      const { countRuns, listRuns } = await import("./runs.ts")
      if (input.counts) return countRuns(databaseUrl, filter, { json: input.json })
      return listRuns(databaseUrl, { ...filter, ...(limit === undefined ? {} : { limit }), ...(cursor === undefined ? {} : { cursor }) }, { json: input.json })
    })
  }),
).pipe(
  Command.withDescription(
    [
      "List runs, newest first, a page at a time: id, workflow, status, creation time, duration, node rows",
      "by state, and the error. Every filter narrows (a repeated --workflow or --status matches any of them);",
      "when there are more runs it prints the --cursor of the next page. --counts prints how many runs",
      "match, by status. Default URL: $DATABASE_URL.",
    ].join("\n"),
  ),
  Command.withShortDescription("list runs (filters, pages) or count them by status"),
)

const runsRetry = Command.make(
  "retry",
  { run: runId, url, json },
  handler(["runs", "retry"], (input) =>
    onDatabase(input.url, async (databaseUrl) => {
      const { retryRun } = await import("./runs.ts")
      return retryRun(databaseUrl, input.run, { json: input.json })
    })),
).pipe(
  Command.withDescription(
    [
      "Retry a failed run from its failed nodes: a new try of each, the nodes the failure cancelled put back,",
      "what succeeded kept; a deployed worker runs them (default URL: $DATABASE_URL). Exits 1 when the run is",
      "unknown or has not failed (nothing is changed then).",
    ].join("\n"),
  ),
  Command.withShortDescription("retry a failed run from its failed nodes"),
)

const runsRevoke = Command.make(
  "revoke",
  { run: runId, node: node("revoke this node and everything after it only"), reason: Flag.String("reason").pipe(Flag.withMetavar("TEXT"), Flag.withDescription("recorded as the revoked run's error"), Flag.optional), url, json },
  handler(["runs", "revoke"], (input) =>
    onDatabase(input.url, async (databaseUrl) => {
      const { revokeRun } = await import("./runs.ts")
      const nodeId = some(input.node)
      const reason = some(input.reason)
      return revokeRun(databaseUrl, input.run, { ...(nodeId === undefined ? {} : { node: nodeId }), ...(reason === undefined ? {} : { reason }) }, { json: input.json })
    })),
).pipe(
  Command.withDescription("Revoke a run, or one node and everything after it (default URL: $DATABASE_URL)."),
  Command.withShortDescription("revoke a run, or a node and what follows"),
)

const runsResume = Command.make(
  "resume",
  { run: runId, node: node("resume this parked node only"), url, json },
  handler(["runs", "resume"], (input) =>
    onDatabase(input.url, async (databaseUrl) => {
      const { resumeRun } = await import("./runs.ts")
      const nodeId = some(input.node)
      return resumeRun(databaseUrl, input.run, nodeId === undefined ? {} : { node: nodeId }, { json: input.json })
    })),
).pipe(
  Command.withDescription(
    [
      "Put a parked run's nodes (or one node) back to ready, due now: once a deployed process has the missing task,",
      "it runs them (default URL: $DATABASE_URL). Exits 1 when the run is unknown or nothing of it is parked.",
    ].join("\n"),
  ),
  Command.withShortDescription("put a parked run's nodes back to ready"),
)

const runs = Command.make("runs").pipe(
  Command.withDescription("Operate on stored runs: no workflow code is needed, every run's graph is stored."),
  Command.withShortDescription("list, show, revoke, retry or resume stored runs"),
  Command.withSubcommands([runsLs, runsShow, runsRevoke, runsRetry, runsResume]),
)

const queuesSync = Command.make(
  "sync",
  { config, dryRun, emulator: emulatorFlag("CLOUD_TASKS_EMULATOR_HOST"), json },
  handler(["queues", "sync"], async (input) => {
    const file = await configFile(input.config)
    const settings = await cloudTasksSettings(file)
    const emulator = emulatorAddress(input.emulator, "CLOUD_TASKS_EMULATOR_HOST")
    const [{ cloudTasksClient, emulatorClient }, { formatQueuePlan, syncQueues }] = await Promise.all([
      import("../adapters/cloud-tasks/Client.ts"),
      import("../adapters/cloud-tasks/Queues.ts"),
    ])
    const client = emulator === undefined ? cloudTasksClient({ projectId: settings.project }) : emulatorClient(emulator, settings.project)
    try {
      const result = await Effect.runPromise(syncQueues(announcingQueues(client, progress(input.json)), settings, { dryRun: input.dryRun }))
      if (input.json) printJson(result)
      else console.log(formatQueuePlan(result).join("\n"))
      return 0
    } finally {
      await client.close()
    }
  }),
).pipe(
  Command.withDescription(
    [
      "Create missing and update changed Cloud Tasks queues declared in FILE (default: taskgraph.config.ts",
      "or taskgraph.config.json). --dry-run prints the differences only; --emulator (or",
      "$CLOUD_TASKS_EMULATOR_HOST) talks to an emulator instead of Google.",
    ].join("\n"),
  ),
  Command.withShortDescription("provision the Cloud Tasks queues"),
)

const pubsubSync = Command.make(
  "sync",
  {
    config,
    dryRun,
    prune: Flag.Boolean("prune").pipe(Flag.withDescription("delete this application's subscriptions no subscriber asks for"), Flag.withDefault(false)),
    emulator: emulatorFlag("PUBSUB_EMULATOR_HOST"),
    json,
  },
  handler(["pubsub", "sync"], async (input) => {
    const file = await configFile(input.config)
    const { loadConfig } = await import("./ConfigFile.ts")
    const loaded = await loadConfig(file)
    if (loaded.pubsub === undefined) throw new UsageError(`${file} has no "pubsub" section`)
    const settings = loaded.pubsub
    const emulator = emulatorAddress(input.emulator, "PUBSUB_EMULATOR_HOST")
    const [{ emulatorPubSubClient, pubSubClient }, { formatPubSubPlan, syncPubSub }] = await Promise.all([
      import("../adapters/pubsub/Client.ts"),
      import("../adapters/pubsub/Provision.ts"),
    ])
    const client = emulator === undefined ? pubSubClient({ projectId: settings.project }) : emulatorPubSubClient(emulator, settings.project)
    try {
      const result = await Effect.runPromise(
        syncPubSub(announcingPubSub(client, settings.project, progress(input.json)), settings, loaded.topics ?? [], loaded.subscribers ?? [], {
          dryRun: input.dryRun,
          prune: input.prune,
        }),
      )
      if (input.json) printJson(result)
      else console.log(formatPubSubPlan(result).join("\n"))
      return 0
    } finally {
      await client.close()
    }
  }),
).pipe(
  Command.withDescription(
    [
      "Create this application's Pub/Sub topics and subscriptions (named <prefix>--…; pull or push with OIDC,",
      "dead-letter topics) from the \"pubsub\" section, the \"topics\" and the \"subscribers\" of FILE (default:",
      "taskgraph.config.ts), and update the changed subscriptions. Other applications' resources are never",
      "touched and topics never deleted; --prune deletes this application's subscriptions no subscriber asks",
      "for. --dry-run prints the differences only; --emulator (or $PUBSUB_EMULATOR_HOST) talks to an emulator.",
    ].join("\n"),
  ),
  Command.withShortDescription("provision the Pub/Sub topics and subscriptions"),
)

const schedulesSync = Command.make(
  "sync",
  { config, dryRun, emulator: emulatorFlag("CLOUD_SCHEDULER_EMULATOR_HOST"), json },
  handler(["schedules", "sync"], async (input) => {
    const file = await configFile(input.config)
    const { loadConfig } = await import("./ConfigFile.ts")
    const loaded = await loadConfig(file)
    if (loaded.scheduler === undefined) throw new UsageError(`${file} has no "scheduler" section`)
    const settings = loaded.scheduler
    const emulator = emulatorAddress(input.emulator, "CLOUD_SCHEDULER_EMULATOR_HOST")
    const [{ cloudSchedulerClient, emulatorSchedulerClient }, { formatJobPlan, syncJobs }] = await Promise.all([
      import("../adapters/cloud-scheduler/Client.ts"),
      import("../adapters/cloud-scheduler/Jobs.ts"),
    ])
    const client = emulator === undefined ? cloudSchedulerClient({ projectId: settings.project }) : emulatorSchedulerClient(emulator, settings.project)
    try {
      const result = await Effect.runPromise(syncJobs(announcingJobs(client, progress(input.json)), settings, loaded.schedules ?? [], { dryRun: input.dryRun }))
      if (input.json) printJson(result)
      else console.log(formatJobPlan(result).join("\n"))
      return 0
    } finally {
      await client.close()
    }
  }),
).pipe(
  Command.withDescription(
    [
      "Create, update and delete this application's Cloud Scheduler jobs (named <prefix>--beat--<schedule>,",
      "and the sweep job <prefix>--sweep) from the \"scheduler\" section and the \"schedules\" of FILE (default:",
      "taskgraph.config.ts). Jobs of other applications are never touched. --dry-run prints the differences",
      "only; --emulator (or $CLOUD_SCHEDULER_EMULATOR_HOST) talks to an emulator instead of Google.",
    ].join("\n"),
  ),
  Command.withShortDescription("provision the Cloud Scheduler jobs"),
)

const group = <I>(name: string, description: string, sync: Command.Command<"sync", I, {}, unknown, ExitCode>) =>
  Command.make(name).pipe(Command.withDescription(description), Command.withShortDescription(description), Command.withSubcommands([sync]))

const emulator = Command.make(
  "emulator",
  {
    port: Flag.Int("port").pipe(Flag.withMetavar("P"), Flag.withDescription("the port on 127.0.0.1 (default: a free one)"), Flag.withDefault(0)),
    config: Flag.String("config").pipe(Flag.withMetavar("FILE"), Flag.withDescription("create the queues this configuration declares first"), Flag.optional),
    certsFile: Flag.String("certs-file").pipe(
      Flag.withMetavar("FILE"),
      Flag.withDescription("where to write the OIDC verification keys (default: a file in the temporary directory)"),
      Flag.optional,
    ),
  },
  handler(["emulator"], async (input) => {
    if (input.port < 0 || input.port > 65535) throw new UsageError(`--port must be a port number, got "${input.port}"`)
    const settings = Option.isNone(input.config) ? undefined : await cloudTasksSettings(input.config.value)
    const { runEmulators } = await import("./cli/emulator.ts")
    return runEmulators({ port: input.port, settings, certsFile: some(input.certsFile) })
  }),
).pipe(
  Command.withDescription(
    [
      "Run the emulators on one gRPC server at 127.0.0.1:P (default: a free port) until Ctrl-C; it prints the APIs",
      "it serves, and every client points at that one address. With --config, create the",
      "declared queues first. The OIDC verification keys are written to FILE (default: a file in the temporary",
      "directory) for oidcAuthenticator({ keySource: emulatorKeySource(FILE) }).",
    ].join("\n"),
  ),
  Command.withShortDescription("run the Cloud Tasks, Cloud Scheduler and Pub/Sub emulators"),
)

/** The application's module and its export, as `worker` and `dev` take them. */
const moduleFlag = Flag.String("module").pipe(
  Flag.withMetavar("PATH"),
  Flag.withDescription("the application's module (.js, .mjs, or .ts on Node 24), from the current directory"),
)
const exportFlag = Flag.String("export").pipe(
  Flag.withMetavar("NAME"),
  Flag.withDescription("the export holding the runtime options (default: taskgraph, then default)"),
  Flag.optional,
)

const worker = Command.make(
  "worker",
  {
    module: moduleFlag,
    export: exportFlag,
    subscription: Flag.String("subscription").pipe(
      Flag.withMetavar("S"),
      Flag.withDescription("also pull this Pub/Sub subscription (a subscriber's name; repeatable)"),
      Flag.atLeast(0),
    ),
    queue: Flag.String("queue").pipe(
      Flag.withMetavar("Q"),
      Flag.withDescription("serve only this queue (repeatable; \"default\": nodes naming none; default: every queue)"),
      Flag.atLeast(0),
    ),
    concurrency: Flag.Int("concurrency").pipe(
      Flag.withMetavar("N"),
      Flag.withDescription("nodes advanced at once, and Pub/Sub messages handled at once (defaults 8 and 10)"),
      Flag.optional,
    ),
    url,
    config: Flag.String("config").pipe(
      Flag.withMetavar("FILE"),
      Flag.withDescription("the configuration whose \"pubsub\" section names the project and prefix (for --subscription)"),
      Flag.optional,
    ),
    emulator: emulatorFlag("PUBSUB_EMULATOR_HOST"),
    sync: Flag.Boolean("sync").pipe(
      Flag.withDescription("create the pulled subscriptions and their topics first, as pubsub sync would (never deleting)"),
      Flag.withDefault(false),
    ),
    shutdownGrace: Flag.String("shutdown-grace").pipe(
      Flag.withMetavar("DURATION"),
      Flag.withDescription("on SIGTERM, how long steps and pulled messages in flight may finish (seconds, or e.g. \"500 millis\")"),
      Flag.optional,
    ),
  },
  handler(["worker"], async (input) => {
    if (input.sync && input.subscription.length === 0) throw new UsageError("--sync provisions the pulled subscriptions: give --subscription too")
    const concurrency = some(input.concurrency)
    if (concurrency !== undefined && concurrency < 1) throw new UsageError(`--concurrency must be a positive integer, got ${concurrency}`)
    const grace = some(input.shutdownGrace)
    const shutdownGraceMs = grace === undefined ? undefined : durationFlag("shutdown-grace", grace)
    const { loadWorkerModule, runWorker } = await import("./cli/worker.ts")
    // the module and the subscriptions are checked before anything connects
    const loaded = await loadWorkerModule(input.module, some(input.export), input.subscription)
    const pubsub = input.subscription.length === 0 ? undefined : await (async () => {
      const file = await configFile(input.config)
      const { loadConfig } = await import("./ConfigFile.ts")
      const settings = (await loadConfig(file)).pubsub
      if (settings === undefined) throw new UsageError(`${file} has no "pubsub" section (--subscription needs its project and prefix)`)
      return { settings, emulator: emulatorAddress(input.emulator, "PUBSUB_EMULATOR_HOST"), sync: input.sync }
    })()
    return onDatabase(input.url, (databaseUrl) =>
      runWorker(loaded, {
        url: databaseUrl,
        queues: input.queue,
        subscriptions: input.subscription,
        ...(concurrency === undefined ? {} : { concurrency }),
        ...(shutdownGraceMs === undefined ? {} : { shutdownGraceMs }),
        ...(pubsub === undefined ? {} : { pubsub }),
      }))
  }),
).pipe(
  Command.withDescription(
    [
      "Run the Postgres worker for the workflows of MODULE until SIGTERM or Ctrl-C. MODULE exports the runtime options",
      "createRuntime takes, without orm ({ workflows, schedules?, subscribers?, services?, defaults?, … }); the worker",
      "connects to URL (default: $DATABASE_URL), fires the module's schedules, and with --subscription also pulls",
      "those Pub/Sub subscriptions (project and prefix from the \"pubsub\" section of FILE; --emulator or",
      "$PUBSUB_EMULATOR_HOST for an emulator; --sync creates them first). On SIGTERM it stops pulling, lets the",
      "messages and steps in flight finish within the grace (--shutdown-grace, else the module's worker",
      "shutdownGrace for its steps, else 8 s), gives back the rest, and exits 0.",
    ].join("\n"),
  ),
  Command.withShortDescription("run the Postgres worker (and Pub/Sub pull) for a module's workflows"),
)

const dev = Command.make(
  "dev",
  {
    module: moduleFlag,
    export: exportFlag,
    port: Flag.Int("port").pipe(Flag.withMetavar("P"), Flag.withDescription("the dashboard's port on 127.0.0.1 (default: a free one)"), Flag.withDefault(0)),
    emulatorPort: Flag.Int("emulator-port").pipe(Flag.withMetavar("P"), Flag.withDescription("the emulators' port on 127.0.0.1 (default: a free one)"), Flag.withDefault(0)),
    dataDir: Flag.String("data-dir").pipe(
      Flag.withMetavar("DIR"),
      Flag.withDescription("keep the database in DIR across restarts (default: a temporary folder removed on exit)"),
      Flag.optional,
    ),
  },
  handler(["dev"], async (input) => {
    for (const [flag, port] of [["port", input.port], ["emulator-port", input.emulatorPort]] as const) {
      if (port < 0 || port > 65535) throw new UsageError(`--${flag} must be a port number, got "${port}"`)
    }
    const { loadWorkerModule } = await import("./cli/worker.ts")
    // the module is checked before anything starts
    const loaded = await loadWorkerModule(input.module, some(input.export), [])
    const { runDev } = await import("./cli/dev.ts")
    return runDev(loaded, { port: input.port, emulatorPort: input.emulatorPort, dataDir: some(input.dataDir) })
  }),
).pipe(
  Command.withDescription(
    [
      "Local development in one command: an embedded PostgreSQL (migrated), the emulators on one port, the",
      "Postgres worker for the workflows of MODULE (as taskgraph worker runs it), and the dashboard on",
      "127.0.0.1 (this machine's clients only). It prints the dashboard's URL, the emulators' address and the",
      "DATABASE_URL to start runs with (a script, taskgraph runs), and runs until SIGTERM or Ctrl-C, then stops",
      "everything it started (the database's temporary folder removed, unless --data-dir) and exits 0.",
    ].join("\n"),
  ),
  Command.withShortDescription("embedded PostgreSQL, worker, emulators and dashboard in one command"),
)

const taskgraph = Command.make("taskgraph").pipe(
  Command.withDescription("Durable, typed workflows on PostgreSQL and Google Cloud."),
  Command.withSubcommands([
    migrate,
    worker,
    dev,
    runs,
    group("queues", "provision the Cloud Tasks queues", queuesSync),
    group("pubsub", "provision the Pub/Sub topics and subscriptions", pubsubSync),
    group("schedules", "provision the Cloud Scheduler jobs", schedulesSync),
    emulator,
  ]),
)

/** This package's version, from its package.json (two folders up from the sources, three from dist/src). */
const version = (): string => {
  for (const up of ["../package.json", "../../package.json"]) {
    try {
      const manifest = JSON.parse(readFileSync(new URL(up, import.meta.url), "utf8")) as { name?: string; version?: string }
      if (manifest.name === "taskgraph" && manifest.version !== undefined) return manifest.version
    } catch {
      // not there: the next folder up
    }
  }
  return "unknown"
}

/** Runs one command line; resolves to the exit code (0 ok, 1 failure, 2 usage). Rejects on failure. */
export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  // `taskgraph help runs show` is `taskgraph runs show --help`
  const args = argv[0] === "help" ? [...argv.slice(1), "--help"] : argv
  const exitCode = { code: 0 }
  const exit = await Effect.runPromiseExit(
    Command.runWith(taskgraph, { version: version() })(args).pipe(
      Effect.provideService(ExitCode, exitCode),
      Effect.provide(cliEnvironment),
    ),
  )
  if (Exit.isSuccess(exit)) return exitCode.code
  const error = Cause.squash(exit.cause)
  // a bad command line, or a command line naming no command: the help was shown on stderr
  if (CliError.isCliError(error)) return 2
  throw error
}
