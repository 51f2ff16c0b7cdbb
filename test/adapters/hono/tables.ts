// Test support for the Hono route tests: a fingerprint of every taskgraph_* table (its row count
// and the md5 of its rows in a fixed order), so "nothing was written" is checked against the
// whole schema, including tables a test did not think of.

/** Rows of a query, as test/support/runtime.ts `TestDatabase.sql` runs it. */
export type Sql = (text: string, params?: ReadonlyArray<unknown>) => Promise<Array<Record<string, any>>>

export type Fingerprint = Readonly<Record<string, { readonly rows: number; readonly md5: string }>>

/** Every table named `taskgraph_*` in the current schema, read in one transaction-free pass. */
export const fingerprint = async (sql: Sql): Promise<Fingerprint> => {
  const tables = await sql(
    "select tablename from pg_tables where schemaname = current_schema() and tablename like 'taskgraph\\_%' order by tablename",
  )
  const names = tables.map((t) => t.tablename as string)
  // a fingerprint over no table would compare equal forever
  if (!names.includes("taskgraph_runs") || !names.includes("taskgraph_nodes")) throw new Error(`unexpected schema: ${names.join(", ")}`)
  const result: Record<string, { rows: number; md5: string }> = {}
  for (const name of names) {
    const [row] = await sql(
      `select count(*)::int as rows, md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) as md5 from "${name}" t`,
    )
    result[name] = { rows: row!.rows, md5: row!.md5 }
  }
  return result
}
