#!/usr/bin/env node
/**
 * The `taskgraph` command.
 *
 *   taskgraph migrate [--url URL]     apply the store's migrations (default: $DATABASE_URL)
 */
import { parseArgs } from "node:util"
import { migrate } from "../adapters/postgres/migrate.ts"

const usage = `usage:
  taskgraph migrate [--url URL]   apply the store's migrations to URL (default: $DATABASE_URL)`

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [command, ...rest] = argv
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
    case undefined:
    case "help":
    case "--help":
      console.log(usage)
      return command === undefined ? 2 : 0
    default:
      console.error(`taskgraph: unknown command "${command}"\n${usage}`)
      return 2
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
