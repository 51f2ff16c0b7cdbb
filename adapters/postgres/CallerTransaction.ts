/**
 * CallerTransaction: the application's MikroORM transaction, as a start sees it. A start given
 * no `em` inside `em.transactional(...)` of the runtime's ORM joins that transaction (djangae's
 * `_transactional`): `ambientTransaction` finds it through MikroORM's transaction context. And
 * what a start wrote in a caller's transaction is dispatched when that transaction commits:
 * `afterCommit` runs a callback on the outermost commit (never after a rollback, its own or an
 * enclosing one), through one `EventSubscriber` on the ORM's event manager.
 *
 * MikroORM's transaction events name the Kysely transaction object: a savepoint (a nested
 * `transactional`) gets one of its own, committed by a `release savepoint` that commits nothing
 * yet. The subscriber notes which transaction each savepoint was opened in, and hands a
 * savepoint's callbacks to that transaction when it is released.
 */
import type { EntityManager, EventSubscriber, MikroORM, TransactionEventArgs } from "@mikro-orm/postgresql"

type Transaction = object & { readonly savepointName?: string }

/** Callbacks waiting for a transaction to commit, by the transaction object. */
const pending = new WeakMap<Transaction, Array<() => void>>()
/** A savepoint's enclosing transaction. */
const parents = new WeakMap<Transaction, Transaction>()
/** A nested fork opening a savepoint: the transaction it opens it in (between the start events). */
const opening = new WeakMap<object, Transaction>()

const run = (callbacks: ReadonlyArray<() => void>) => {
  for (const callback of callbacks) {
    try {
      callback()
    } catch {
      // a callback never fails the caller's commit (dispatch has the sweeper behind it)
    }
  }
}

const subscriber: EventSubscriber = {
  beforeTransactionStart: ({ em, transaction }: TransactionEventArgs) => {
    // MikroORM passes the enclosing transaction when it is about to open a savepoint in it
    if (transaction !== undefined) opening.set(em, transaction)
  },
  afterTransactionStart: ({ em, transaction }: TransactionEventArgs) => {
    const parent = opening.get(em)
    opening.delete(em)
    if (parent !== undefined && transaction?.savepointName !== undefined) parents.set(transaction, parent)
  },
  afterTransactionCommit: ({ transaction }: TransactionEventArgs) => {
    const callbacks = transaction === undefined ? undefined : pending.get(transaction)
    if (transaction === undefined || callbacks === undefined) return
    pending.delete(transaction)
    if (transaction.savepointName === undefined) return run(callbacks)
    // a released savepoint commits nothing yet: its callbacks wait for the enclosing transaction
    // (one opened before this subscriber was registered is unknown: the sweeper dispatches them)
    const parent = parents.get(transaction)
    if (parent !== undefined) pending.set(parent, [...(pending.get(parent) ?? []), ...callbacks])
  },
  afterTransactionRollback: ({ transaction }: TransactionEventArgs) => {
    if (transaction !== undefined) pending.delete(transaction)
  },
}

/** Puts the subscriber on `em`'s event manager (once); transactions begun afterwards inherit it. */
export const watchTransactions = (em: EntityManager): void => {
  const events = em.getEventManager()
  if (!events.getSubscribers().has(subscriber)) events.registerSubscriber(subscriber)
}

/**
 * The transaction the caller is in, when it belongs to `orm`: the fork MikroORM's transaction
 * context (or request context) holds, in a transaction. Read it synchronously where the caller
 * called (Effect fibers may resume outside the caller's async context).
 */
export const ambientTransaction = (orm: MikroORM): EntityManager | undefined => {
  const em = orm.em.getContext(false)
  // another ORM's transaction (another database, perhaps) is never joined
  return em !== orm.em && em.config === orm.config && em.isInTransaction() ? em : undefined
}

/**
 * Runs `callback` once `em`'s transaction commits for good (the outermost commit), never if it
 * rolls back. False when `em` is not in a transaction (the caller runs it now).
 */
export const afterCommit = (em: EntityManager, callback: () => void): boolean => {
  const transaction = em.getTransactionContext<Transaction>()
  if (transaction === undefined) return false
  // a transaction begun before the subscriber was registered reports its commit here
  watchTransactions(em)
  // added in place: a transaction of many starts must not copy its list on each one
  const callbacks = pending.get(transaction)
  if (callbacks === undefined) pending.set(transaction, [callback])
  else callbacks.push(callback)
  return true
}
