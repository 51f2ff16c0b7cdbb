#!/usr/bin/env node
/**
 * The executable behind `npx taskgraph`: runs one command line (src/cli.ts) and exits with its
 * code: 0 ok, 1 failure (the reason on stderr), 2 usage.
 */
import { main } from "./cli.ts"

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`taskgraph: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  },
)
