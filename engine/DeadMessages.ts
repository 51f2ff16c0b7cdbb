/**
 * DeadMessages: where a message that can never be processed is kept (malformed, not the topic's
 * Schema, refused by the workflow), so it is acknowledged — no redelivery storm — and never lost
 * silently. One row per subscription and Pub/Sub message id: a dead message delivered again is
 * not stored twice.
 */
import { Context, type Effect } from "effect"
import type { StoreError } from "./WorkflowStore.ts"

export interface DeadMessage {
  readonly subscription: string
  /** Pub/Sub's message id. */
  readonly messageId: string
  /** taskgraph's own id attribute, when the message had one. */
  readonly id: string | null
  readonly attributes: Readonly<Record<string, string>>
  /** The data as received, base64 (it may not be text). */
  readonly data: string
  /** Which check refused it: "envelope", "encoding", "json", "schema", "input". */
  readonly reason: string
  readonly error: string
  readonly receivedAt: number
}

export class DeadMessages extends Context.Service<DeadMessages, {
  /** Stores a dead message; false when this subscription already has it. */
  readonly record: (message: DeadMessage) => Effect.Effect<boolean, StoreError>
  /** The dead messages of a subscription, newest first. */
  readonly list: (subscription: string, limit: number) => Effect.Effect<ReadonlyArray<DeadMessage>, StoreError>
}>()("taskgraph/DeadMessages") {}
