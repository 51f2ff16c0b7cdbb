import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    setupFiles: ["test/support/setup.ts"],
    // one embedded PostgreSQL for the whole run; tests get its URL with inject("postgresAdminUrl")
    globalSetup: ["test/support/global-postgres.ts"],
    pool: "forks",
    // two cores: two test files at a time, beside the shared Postgres server
    maxWorkers: 2,
  },
})
