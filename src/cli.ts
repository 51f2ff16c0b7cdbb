/**
 * The `taskgraph` command. `main(argv)` returns the exit code: 0 ok, 1 failure, 2 usage.
 * Every command has its own help (`taskgraph <command> --help`); a command loads only the
 * modules it uses (the Cloud Tasks client and the emulator are not loaded to migrate or to
 * print help). src/bin.ts is the executable.
 */
import { existsSync } from "node:fs"
import { parseArgs, type ParseArgsConfig } from "node:util"

/** A usage problem: printed with the command's usage, exit code 2. */
class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>

interface Command {
  /** The words that name it, e.g. ["runs", "show"]. */
  readonly path: ReadonlyArray<string>
  readonly synopsis: string
  readonly description: string
  readonly options: Options
  readonly positionals?: boolean
  readonly run: (values: Record<string, unknown>, positionals: ReadonlyArray<string>) => Promise<number>
}

const databaseUrl = (values: Record<string, unknown>): string => {
  const url = (values.url as string | undefined) ?? process.env.DATABASE_URL
  if (url === undefined || url === "") throw new UsageError("give --url or set DATABASE_URL")
  return url
}

/** Where the database URL came from, for error messages. */
const urlSource = (values: Record<string, unknown>): string => (values.url === undefined ? "DATABASE_URL" : "--url")

/**
 * Runs a command that takes `--url` with its URL checked first (a malformed one is refused before
 * anything connects) and a failed connect named: host, port, database and where the URL came from.
 */
const onDatabase = async (values: Record<string, unknown>, run: () => Promise<number>): Promise<number> => {
  const url = databaseUrl(values)
  const { withDatabaseErrors } = await import("../adapters/postgres/DatabaseUrl.ts")
  return withDatabaseErrors(url, urlSource(values), run)
}

const oneRun = (positionals: ReadonlyArray<string>, command: string): string => {
  const run = positionals[0]
  if (run === undefined || positionals.length > 1) throw new UsageError(`${command}: give exactly one RUN id`)
  return run
}

const configFile = async (given: string | undefined): Promise<string> => {
  const { defaultConfigFiles } = await import("./ConfigFile.ts")
  if (given !== undefined) return given
  const found = defaultConfigFiles.find((file) => existsSync(file))
  if (found === undefined) throw new UsageError(`no --config given and no ${defaultConfigFiles.join(" or ")} here`)
  return found
}

const cloudTasksSettings = async (file: string) => {
  const { loadConfig } = await import("./ConfigFile.ts")
  const config = await loadConfig(file)
  if (config.cloudTasks === undefined) throw new UsageError(`${file} has no "cloudTasks" section`)
  return { ...config.cloudTasks, queues: config.cloudTasks.queues ?? [] }
}

/** Resolves on the first SIGINT or SIGTERM. */
const untilSignal = () =>
  new Promise<NodeJS.Signals>((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off("SIGINT", on)
      process.off("SIGTERM", on)
      resolve(signal)
    }
    process.on("SIGINT", on)
    process.on("SIGTERM", on)
  })

const commands: ReadonlyArray<Command> = [
  {
    path: ["migrate"],
    synopsis: "taskgraph migrate [--url URL]",
    description: "Apply the store's migrations to URL (default: $DATABASE_URL). Safe to run again, and from several processes at once.",
    options: { url: { type: "string" } },
    run: async (values) => {
      const url = databaseUrl(values)
      const { migrate } = await import("../adapters/postgres/migrate.ts")
      const applied = await migrate(url, undefined, { source: urlSource(values) })
      console.log(applied.length === 0 ? "taskgraph migrate: up to date" : `taskgraph migrate: applied ${applied.join(", ")}`)
      return 0
    },
  },
  {
    path: ["runs", "show"],
    synopsis: "taskgraph runs show RUN [--url URL]",
    description: "Print a run: its status and every node's state, attempt and result (default URL: $DATABASE_URL).",
    options: { url: { type: "string" } },
    positionals: true,
    run: async (values, positionals) => {
      const url = databaseUrl(values)
      const run = oneRun(positionals, "runs show")
      const { showRun } = await import("./runs.ts")
      return showRun(url, run)
    },
  },
  {
    path: ["runs", "revoke"],
    synopsis: "taskgraph runs revoke RUN [--node NODE] [--reason TEXT] [--url URL]",
    description: "Revoke a run, or one node and everything after it (default URL: $DATABASE_URL).",
    options: { url: { type: "string" }, node: { type: "string" }, reason: { type: "string" } },
    positionals: true,
    run: async (values, positionals) => {
      const url = databaseUrl(values)
      const run = oneRun(positionals, "runs revoke")
      const { revokeRun } = await import("./runs.ts")
      return revokeRun(url, run, {
        ...(values.node === undefined ? {} : { node: values.node as string }),
        ...(values.reason === undefined ? {} : { reason: values.reason as string }),
      })
    },
  },
  {
    path: ["runs", "resume"],
    synopsis: "taskgraph runs resume RUN [--node NODE] [--url URL]",
    description: [
      "Put a parked run's nodes (or one node) back to ready, due now: once a deployed process has the missing task,",
      "it runs them (default URL: $DATABASE_URL). Exits 1 when the run is unknown or nothing of it is parked.",
    ].join("\n"),
    options: { url: { type: "string" }, node: { type: "string" } },
    positionals: true,
    run: async (values, positionals) => {
      const url = databaseUrl(values)
      const run = oneRun(positionals, "runs resume")
      const { resumeRun } = await import("./runs.ts")
      return resumeRun(url, run, values.node === undefined ? {} : { node: values.node as string })
    },
  },
  {
    path: ["queues", "sync"],
    synopsis: "taskgraph queues sync [--config FILE] [--dry-run] [--emulator HOST:PORT]",
    description: [
      "Create missing and update changed Cloud Tasks queues declared in FILE (default: taskgraph.config.ts",
      "or taskgraph.config.json). --dry-run prints the differences only; --emulator (or",
      "$CLOUD_TASKS_EMULATOR_HOST) talks to an emulator instead of Google.",
    ].join("\n"),
    options: { config: { type: "string" }, "dry-run": { type: "boolean" }, emulator: { type: "string" } },
    run: async (values) => {
      const file = await configFile(values.config as string | undefined)
      const settings = await cloudTasksSettings(file)
      const emulator = (values.emulator as string | undefined) ?? process.env.CLOUD_TASKS_EMULATOR_HOST
      const [{ Effect }, { cloudTasksClient, emulatorClient }, { formatQueuePlan, syncQueues }] = await Promise.all([
        import("effect"),
        import("../adapters/cloud-tasks/Client.ts"),
        import("../adapters/cloud-tasks/Queues.ts"),
      ])
      const client = emulator !== undefined && emulator !== ""
        ? emulatorClient(emulator, settings.project)
        : cloudTasksClient({ projectId: settings.project })
      try {
        const result = await Effect.runPromise(syncQueues(client, settings, { dryRun: values["dry-run"] === true }))
        console.log(formatQueuePlan(result).join("\n"))
        return 0
      } finally {
        await client.close()
      }
    },
  },
  {
    path: ["pubsub", "sync"],
    synopsis: "taskgraph pubsub sync [--config FILE] [--dry-run] [--prune] [--emulator HOST:PORT]",
    description: [
      "Create this application's Pub/Sub topics and subscriptions (named <prefix>--…; pull or push with OIDC,",
      "dead-letter topics) from the \"pubsub\" section, the \"topics\" and the \"subscribers\" of FILE (default:",
      "taskgraph.config.ts), and update the changed subscriptions. Other applications' resources are never",
      "touched and topics never deleted; --prune deletes this application's subscriptions no subscriber asks",
      "for. --dry-run prints the differences only; --emulator (or $PUBSUB_EMULATOR_HOST) talks to an emulator.",
    ].join("\n"),
    options: { config: { type: "string" }, "dry-run": { type: "boolean" }, prune: { type: "boolean" }, emulator: { type: "string" } },
    run: async (values) => {
      const file = await configFile(values.config as string | undefined)
      const { loadConfig } = await import("./ConfigFile.ts")
      const config = await loadConfig(file)
      if (config.pubsub === undefined) throw new UsageError(`${file} has no "pubsub" section`)
      const settings = config.pubsub
      const emulator = (values.emulator as string | undefined) ?? process.env.PUBSUB_EMULATOR_HOST
      const [{ Effect }, { emulatorPubSubClient, pubSubClient }, { formatPubSubPlan, syncPubSub }] = await Promise.all([
        import("effect"),
        import("../adapters/pubsub/Client.ts"),
        import("../adapters/pubsub/Provision.ts"),
      ])
      const client = emulator !== undefined && emulator !== "" ? emulatorPubSubClient(emulator, settings.project) : pubSubClient({ projectId: settings.project })
      try {
        const result = await Effect.runPromise(
          syncPubSub(client, settings, config.topics ?? [], config.subscribers ?? [], { dryRun: values["dry-run"] === true, prune: values.prune === true }),
        )
        console.log(formatPubSubPlan(result).join("\n"))
        return 0
      } finally {
        await client.close()
      }
    },
  },
  {
    path: ["schedules", "sync"],
    synopsis: "taskgraph schedules sync [--config FILE] [--dry-run] [--emulator HOST:PORT]",
    description: [
      "Create, update and delete this application's Cloud Scheduler jobs (named <prefix>--beat--<schedule>,",
      "and the sweep job <prefix>--sweep) from the \"scheduler\" section and the \"schedules\" of FILE (default:",
      "taskgraph.config.ts). Jobs of other applications are never touched. --dry-run prints the differences",
      "only; --emulator (or $CLOUD_SCHEDULER_EMULATOR_HOST) talks to an emulator instead of Google.",
    ].join("\n"),
    options: { config: { type: "string" }, "dry-run": { type: "boolean" }, emulator: { type: "string" } },
    run: async (values) => {
      const file = await configFile(values.config as string | undefined)
      const { loadConfig } = await import("./ConfigFile.ts")
      const config = await loadConfig(file)
      if (config.scheduler === undefined) throw new UsageError(`${file} has no "scheduler" section`)
      const settings = config.scheduler
      const emulator = (values.emulator as string | undefined) ?? process.env.CLOUD_SCHEDULER_EMULATOR_HOST
      const [{ Effect }, { cloudSchedulerClient, emulatorSchedulerClient }, { formatJobPlan, syncJobs }] = await Promise.all([
        import("effect"),
        import("../adapters/cloud-scheduler/Client.ts"),
        import("../adapters/cloud-scheduler/Jobs.ts"),
      ])
      const client = emulator !== undefined && emulator !== ""
        ? emulatorSchedulerClient(emulator, settings.project)
        : cloudSchedulerClient({ projectId: settings.project })
      try {
        const result = await Effect.runPromise(syncJobs(client, settings, config.schedules ?? [], { dryRun: values["dry-run"] === true }))
        console.log(formatJobPlan(result).join("\n"))
        return 0
      } finally {
        await client.close()
      }
    },
  },
  {
    path: ["emulator"],
    synopsis: "taskgraph emulator [--port P] [--config FILE] [--certs-file FILE]",
    description: [
      "Run the emulators on one gRPC server at 127.0.0.1:P (default: a free port) until Ctrl-C; it prints the APIs",
      "it serves, and every client points at that one address. With --config, create the",
      "declared queues first. The OIDC verification keys are written to FILE (default: a file in the temporary",
      "directory) for oidcAuthenticator({ keySource: emulatorKeySource(FILE) }).",
    ].join("\n"),
    options: { port: { type: "string" }, config: { type: "string" }, "certs-file": { type: "string" } },
    run: (values) => emulator(values),
  },
]

const emulator = async (values: Record<string, unknown>): Promise<number> => {
  const port = values.port === undefined ? 0 : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number, got "${String(values.port)}"`)
  const settings = values.config === undefined ? undefined : await cloudTasksSettings(values.config as string)
  const [{ Effect }, { mkdir, rm, writeFile }, os, path, { startEmulators }, { emulatorClient }, { formatQueuePlan, syncQueues }] =
    await Promise.all([
      import("effect"),
      import("node:fs/promises"),
      import("node:os"),
      import("node:path"),
      import("../emulators/Emulators.ts"),
      import("../adapters/cloud-tasks/Client.ts"),
      import("../adapters/cloud-tasks/Queues.ts"),
    ])
  const signal = untilSignal()
  const server = await startEmulators({ port })
  const certsFile = path.resolve((values["certs-file"] as string | undefined) ?? path.join(os.tmpdir(), `taskgraph-emulator-${server.port}`, "certs.json"))
  const jwksFile = path.join(path.dirname(certsFile), "jwks.json")
  try {
    await mkdir(path.dirname(certsFile), { recursive: true })
    await writeFile(certsFile, `${JSON.stringify(server.certs, null, 2)}\n`)
    await writeFile(jwksFile, `${JSON.stringify(server.jwks, null, 2)}\n`)
    if (settings !== undefined) {
      const client = emulatorClient(server.address, settings.project)
      try {
        const result = await Effect.runPromise(syncQueues(client, settings))
        console.log(formatQueuePlan(result).join("\n"))
      } finally {
        await client.close()
      }
    }
    console.log(
      [
        `Emulators listening on ${server.address} (every client: apiEndpoint "127.0.0.1", port ${server.port}, insecure)`,
        ...server.services.map((api) => `  ${`${api.title}:`.padEnd(13)}${api.hostVariable}=${server.address}  (${api.name})`),
        `  issuer:      ${server.issuer}`,
        `  certs:       ${certsFile}  (oidcAuthenticator keySource: emulatorKeySource(file))`,
        `  jwks:        ${jwksFile}`,
        "Ctrl-C stops them.",
      ].join("\n"),
    )
    const received = await signal
    console.log(`${received}: stopping the emulators`)
    return 0
  } finally {
    await server.stop()
    await rm(certsFile, { force: true })
    await rm(jwksFile, { force: true })
  }
}

const optionHelp = (options: Options): string =>
  Object.keys(options).length === 0 ? "" : `\noptions:\n${Object.entries(options).map(([name, o]) => `  --${name}${o.type === "string" ? " VALUE" : ""}`).join("\n")}\n  --help`

const commandHelp = (command: Command): string => `usage: ${command.synopsis}\n\n${command.description}\n${optionHelp(command.options)}`

/** The overview `taskgraph --help` prints. */
export const usage = [
  "usage: taskgraph <command> [options]",
  "",
  "commands:",
  ...commands.map((c) => `  ${c.synopsis}`),
  "",
  "`taskgraph <command> --help` describes one command. Exit codes: 0 ok, 1 failure, 2 usage.",
].join("\n")

const isHelp = (word: string | undefined) => word === "--help" || word === "-h" || word === "help"

const isParseError = (error: unknown) => {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_")
}

/** Runs one command line; resolves to the exit code (0 ok, 1 failure, 2 usage). Throws on failure. */
export const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [first, ...afterFirst] = argv
  if (first === undefined) {
    console.error(usage)
    return 2
  }
  if (isHelp(first)) {
    // `taskgraph help runs show` is `taskgraph runs show --help`
    if (afterFirst.length === 0) {
      console.log(usage)
      return 0
    }
    return main([...afterFirst, "--help"])
  }
  const group = commands.filter((c) => c.path[0] === first)
  if (group.length === 0) {
    console.error(`taskgraph: unknown command "${first}"\n\n${usage}`)
    return 2
  }
  const command = group.find((c) => c.path.length === 1 || c.path[1] === afterFirst[0])
  if (command === undefined) {
    const sub = afterFirst[0]
    const list = group.map((c) => c.synopsis).join("\n  ")
    if (sub === undefined || isHelp(sub)) {
      ;(sub === undefined ? console.error : console.log)(`usage:\n  ${list}`)
      return sub === undefined ? 2 : 0
    }
    console.error(`taskgraph: unknown command "${first} ${sub}"\n\nusage:\n  ${list}`)
    return 2
  }
  const args = argv.slice(command.path.length)
  if (args.includes("--help") || args.includes("-h")) {
    console.log(commandHelp(command))
    return 0
  }
  try {
    const { values, positionals } = parseArgs({ args: [...args], options: command.options, allowPositionals: command.positionals === true })
    const run = () => command.run(values, positionals)
    return await ("url" in command.options ? onDatabase(values, run) : run())
  } catch (error) {
    if (error instanceof UsageError || isParseError(error)) {
      console.error(`taskgraph ${command.path.join(" ")}: ${(error as Error).message}\n\n${commandHelp(command)}`)
      return 2
    }
    throw error
  }
}
