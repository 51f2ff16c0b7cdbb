#!/usr/bin/env node
/**
 * The `taskgraph` command.
 *
 *   taskgraph migrate [--url URL]     apply the store's migrations (default: $DATABASE_URL)
 *   taskgraph queues sync [--config FILE] [--dry-run] [--emulator HOST:PORT]
 *                                     create and update the Cloud Tasks queues the configuration declares
 *   taskgraph emulator [--port P] [--config FILE] [--certs-file FILE]
 *                                     run a Cloud Tasks emulator in the foreground (Ctrl-C stops it)
 *   taskgraph runs show RUN [--url URL]
 *   taskgraph runs revoke RUN [--node NODE] [--reason TEXT] [--url URL]
 */
import type { CloudTasksClient } from "@google-cloud/tasks"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import { mkdir, rm, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { parseArgs } from "node:util"
import { cloudTasksClient, emulatorClient } from "../adapters/cloud-tasks/Client.ts"
import { formatQueuePlan, syncQueues } from "../adapters/cloud-tasks/Queues.ts"
import { startCloudTasksEmulator } from "../adapters/cloud-tasks/emulator/index.ts"
import { migrate } from "../adapters/postgres/migrate.ts"
import { defaultConfigFiles, loadConfig, type TaskgraphConfig } from "./cloudTasks.ts"
import { revokeRun, showRun } from "./runs.ts"

const usage = `usage:
  taskgraph migrate [--url URL]
      apply the store's migrations to URL (default: $DATABASE_URL)
  taskgraph queues sync [--config FILE] [--dry-run] [--emulator HOST:PORT]
      create missing and update changed Cloud Tasks queues declared in FILE
      (default: ${defaultConfigFiles.join(" or ")}); --dry-run prints the differences only;
      --emulator (or $CLOUD_TASKS_EMULATOR_HOST) talks to an emulator instead of Google
  taskgraph emulator [--port P] [--config FILE] [--certs-file FILE]
      run a Cloud Tasks emulator on 127.0.0.1:P (default: a free port) until Ctrl-C;
      with --config, create the declared queues first; the OIDC verification keys are
      written to FILE (default: a file in the temporary directory)
  taskgraph runs show RUN [--url URL]
      print a run: its status and every node's state, attempt and result
  taskgraph runs revoke RUN [--node NODE] [--reason TEXT] [--url URL]
      revoke a run, or one node and everything after it (default URL: $DATABASE_URL)`

/** A usage problem: printed with the usage, exit code 2. */
class UsageError extends Error {}

const configFile = (given: string | undefined): string => {
  if (given !== undefined) return given
  const found = defaultConfigFiles.find((file) => existsSync(file))
  if (found === undefined) throw new UsageError(`no --config given and no ${defaultConfigFiles.join(" or ")} here`)
  return found
}

const cloudTasksSettings = (config: TaskgraphConfig, file: string) => {
  if (config.cloudTasks === undefined) throw new UsageError(`${file} has no "cloudTasks" section`)
  return { ...config.cloudTasks, queues: config.cloudTasks.queues ?? [] }
}

const queuesSync = async (args: ReadonlyArray<string>): Promise<number> => {
  const { values } = parseArgs({
    args: [...args],
    options: { config: { type: "string" }, "dry-run": { type: "boolean" }, emulator: { type: "string" } },
  })
  const file = configFile(values.config)
  const settings = cloudTasksSettings(await loadConfig(file), file)
  const emulator = values.emulator ?? process.env.CLOUD_TASKS_EMULATOR_HOST
  const client: CloudTasksClient = emulator !== undefined && emulator !== ""
    ? emulatorClient(emulator, settings.project)
    : cloudTasksClient({ projectId: settings.project })
  try {
    const result = await Effect.runPromise(syncQueues(client, settings, { dryRun: values["dry-run"] === true }))
    console.log(formatQueuePlan(result).join("\n"))
    return 0
  } finally {
    await client.close()
  }
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

const emulator = async (args: ReadonlyArray<string>): Promise<number> => {
  const { values } = parseArgs({
    args: [...args],
    options: { port: { type: "string" }, config: { type: "string" }, "certs-file": { type: "string" } },
  })
  const port = values.port === undefined ? 0 : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number, got "${values.port}"`)
  const settings = values.config === undefined ? undefined : cloudTasksSettings(await loadConfig(values.config), values.config)
  const signal = untilSignal()
  const server = await startCloudTasksEmulator({ port })
  const certsFile = path.resolve(values["certs-file"] ?? path.join(os.tmpdir(), `taskgraph-emulator-${server.port}`, "certs.json"))
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
        `Cloud Tasks emulator listening on ${server.address}`,
        `  clients:  CLOUD_TASKS_EMULATOR_HOST=${server.address} (apiEndpoint "127.0.0.1", port ${server.port}, insecure)`,
        `  issuer:   ${server.issuer}`,
        `  certs:    ${certsFile}  (oidcAuthenticator keySource: emulatorKeySource(file))`,
        `  jwks:     ${jwksFile}`,
        "Ctrl-C stops it.",
      ].join("\n"),
    )
    const received = await signal
    console.log(`${received}: stopping the emulator`)
    return 0
  } finally {
    await server.stop()
    await rm(certsFile, { force: true })
    await rm(jwksFile, { force: true })
  }
}

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case "migrate": {
        const { values } = parseArgs({ args: [...rest], options: { url: { type: "string" } } })
        const url = values.url ?? process.env.DATABASE_URL
        if (url === undefined || url === "") {
          console.error("taskgraph migrate: give --url or set DATABASE_URL")
          return 2
        }
        const applied = await migrate(url)
        console.log(applied.length === 0 ? "taskgraph migrate: up to date" : `taskgraph migrate: applied ${applied.join(", ")}`)
        return 0
      }
      case "queues": {
        const [sub, ...args] = rest
        if (sub !== "sync") throw new UsageError(`unknown command "queues ${sub ?? ""}" (did you mean "queues sync"?)`)
        return await queuesSync(args)
      }
      case "emulator":
        return await emulator(rest)
      case "runs": {
        const [sub, ...args] = rest
        const { values, positionals } = parseArgs({
          args,
          allowPositionals: true,
          options: { url: { type: "string" }, node: { type: "string" }, reason: { type: "string" } },
        })
        const url = values.url ?? process.env.DATABASE_URL
        if (url === undefined || url === "") throw new UsageError("give --url or set DATABASE_URL")
        const run = positionals[0]
        if (run === undefined || positionals.length > 1) throw new UsageError(`runs ${sub ?? ""}: give exactly one RUN id`)
        if (sub === "show") return await showRun(url, run)
        if (sub === "revoke") {
          return await revokeRun(url, run, {
            ...(values.node === undefined ? {} : { node: values.node }),
            ...(values.reason === undefined ? {} : { reason: values.reason }),
          })
        }
        throw new UsageError(`unknown command "runs ${sub ?? ""}" (runs show, runs revoke)`)
      }
      case undefined:
      case "help":
      case "--help":
        console.log(usage)
        return command === undefined ? 2 : 0
      default:
        console.error(`taskgraph: unknown command "${command}"\n${usage}`)
        return 2
    }
  } catch (error) {
    // parseArgs reports unknown or malformed options as TypeErrors with a code
    if (error instanceof UsageError || (error as { code?: unknown })?.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ||
      (error as { code?: unknown })?.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      console.error(`taskgraph: ${(error as Error).message}\n${usage}`)
      return 2
    }
    throw error
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`taskgraph: ${error instanceof Error ? error.message : String(error)}`)
      process.exit(1)
    },
  )
}

export { main }
