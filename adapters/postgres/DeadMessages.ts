/**
 * The Postgres `DeadMessages`: Pub/Sub messages that can never be processed, in
 * `taskgraph_dead_messages` (Migration20261201_DeadMessages), one row per subscription and
 * Pub/Sub message id (`on conflict do nothing`: a redelivered dead message is kept once).
 */
import type { MikroORM } from "@mikro-orm/postgresql"
import { Effect, Layer } from "effect"
import { type Kysely, sql } from "kysely"
import { type DeadMessage, DeadMessages } from "../../engine/DeadMessages.ts"
import { StoreError } from "../../engine/WorkflowStore.ts"
import { isRetryableStoreCause } from "./PostgresStore.ts"

const attempt = <A>(f: () => Promise<A>): Effect.Effect<A, StoreError> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => new StoreError({ message: cause instanceof Error ? cause.message : String(cause), retryable: isRetryableStoreCause(cause), cause }),
  })

export const PostgresDeadMessages = {
  /** The store as a Layer over an initialised MikroORM (its pool is used, never closed here). */
  layer: (orm: MikroORM): Layer.Layer<DeadMessages> =>
    Layer.sync(DeadMessages, () => {
      const db = orm.em.getKysely() as unknown as Kysely<any>
      return DeadMessages.of({
        record: (m) =>
          attempt(async () => {
            const rows = await sql`insert into taskgraph_dead_messages
                (subscription, message_id, taskgraph_id, attributes, data, reason, error, received_at)
              values (${m.subscription}, ${m.messageId}, ${m.id}, ${JSON.stringify(m.attributes)}::jsonb, ${m.data}, ${m.reason}, ${m.error},
                ${new Date(m.receivedAt)}::timestamptz)
              on conflict (subscription, message_id) do nothing
              returning id`.execute(db)
            return rows.rows.length > 0
          }),
        list: (subscription, limit) =>
          attempt(async () => {
            const rows = await sql<Record<string, any>>`select * from taskgraph_dead_messages where subscription = ${subscription}
              order by received_at desc, id desc limit ${Math.max(1, Math.min(limit, 1000))}`.execute(db)
            return rows.rows.map((row): DeadMessage => ({
              subscription: row.subscription,
              messageId: row.message_id,
              id: row.taskgraph_id,
              attributes: row.attributes,
              data: row.data,
              reason: row.reason,
              error: row.error,
              receivedAt: new Date(row.received_at).getTime(),
            }))
          }),
      })
    }),
}
