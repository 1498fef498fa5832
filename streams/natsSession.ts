import { createHash, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { nestingDepth, utf8Above } from './wsCodec.js';

/**
 * The handshake of an agent (or client) with a coordinator over NATS, and what it yields: the
 * session key that signs orders and results (`streams/signing.ts`) and the session's subjects.
 *
 * Over WebSocket the key is issued on the agent's own connection. Over NATS every message crosses
 * a shared server where any client allowed to subscribe to `_INBOX.>` could read a reply: so the
 * key never travels. Each side draws an ephemeral X25519 key pair; the session key is derived
 * from their Diffie–Hellman secret (HKDF-SHA256, salted with the shared rxswarm token), and each
 * side proves it holds the token with an HMAC over both public keys — the token never travels
 * either. A NATS user without the token can neither join nor learn a session's key; one that sits
 * in the middle of the handshake derives a key nobody else holds, so what it relays is refused.
 *
 * ```
 * agent ──hello { agentId, role, pub, nonce, proof }──▶ P.hello (request)
 *       ◀──join { pub, nonce, proof, session, heartbeatMs… } or error { code, error }── (reply)
 * both: key ‖ sid = HKDF(X25519(priv, peer pub), sha256(token), "rxswarm-nats" agentId nonces)
 * agent ──ready──▶ P.in.<sid>   envelopes ──▶ P.in.<sid>     ◀── envelopes, error: P.to.<sid>
 * ```
 *
 * The session id `sid` names the session's two subjects: a NATS user that does not hold the key
 * does not know them (it may still learn them by subscribing to `P.in.>`, if NATS lets it: results
 * and orders are signed either way; see the README on NATS permissions).
 */

const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');
const B64_32 = z.string().regex(/^[A-Za-z0-9+/]{43}=$/);
const NONCE = z.string().regex(/^[A-Za-z0-9+/]{22}==$/);
const PROOF = z.string().regex(/^[A-Za-z0-9_-]{43}$/);
const id = z.string().min(1).max(256);

export const natsHelloSchema = z.object({
  v: z.literal(1),
  type: z.literal('hello'),
  agentId: id,
  capabilities: z.array(id).max(256),
  role: z.enum(['agent', 'client']),
  slots: z.number().int().min(1).max(1024),
  instance: z.string().min(1).max(64),
  maxFrameBytes: z.number().int().min(64),
  pub: B64_32,
  nonce: NONCE,
  proof: PROOF,
});

export const natsJoinSchema = z.object({
  v: z.literal(1),
  type: z.literal('join'),
  agentId: id,
  session: z.string().max(64),
  pub: B64_32,
  nonce: NONCE,
  proof: PROOF,
  heartbeatMs: z.number().positive().max(3_600_000).optional(),
  ackTimeoutMs: z.number().positive().max(3_600_000).optional(),
  maxValueBytes: z.number().int().min(1).optional(),
  maxPayload: z.number().int().min(64).optional(),
  /** A session heard from in no way this long ends: the peer keeps it alive with `ready` frames when it has nothing else to send. */
  idleMs: z.number().positive().max(86_400_000).optional(),
});

const errorSchema = z.object({ v: z.literal(1), type: z.literal('error'), code: z.number().int(), error: z.string().max(4096) });

export type NatsHello = z.infer<typeof natsHelloSchema>;
export type NatsJoin = z.infer<typeof natsJoinSchema>;
export type NatsError = z.infer<typeof errorSchema>;

/** A session's secrets: the signing key and the id of its subjects (32 hex characters). */
export interface SessionSecrets {
  readonly key: Buffer;
  readonly sid: string;
}

/** Parses a handshake message, in the boundary's order: size, depth, JSON, shape. Never throws. */
export function decodeHandshake<T extends 'hello' | 'join' | 'error'>(type: T, text: string, maxBytes: number): { ok: true; message: T extends 'hello' ? NatsHello : T extends 'join' ? NatsJoin : NatsError } | { ok: false; error: string } {
  if (utf8Above(text, maxBytes)) return { ok: false, error: `${type} of ${Buffer.byteLength(text, 'utf8')} bytes exceeds the limit of ${maxBytes}` };
  if (nestingDepth(text, 4) > 4) return { ok: false, error: `${type} nested deeper than 4 levels` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `malformed JSON: ${(err as Error).message}` };
  }
  const schema = type === 'hello' ? natsHelloSchema : type === 'join' ? natsJoinSchema : errorSchema;
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return { ok: false, error: `invalid ${type}: ${first === undefined ? 'schema mismatch' : `${first.path.join('.') || 'message'}: ${first.message}`}` };
  }
  return { ok: true, message: parsed.data as never };
}

/** The token as the handshake uses it: never sent, only hashed into proofs and the key derivation. */
export function tokenKey(token: string): Buffer {
  return createHash('sha256').update(`rxswarm-nats-token\u0000${token}`, 'utf8').digest();
}

function proof(tkey: Buffer, fields: readonly string[]): string {
  return createHmac('sha256', tkey).update(JSON.stringify(fields)).digest('base64url');
}

function sameProof(expected: string, given: string): boolean {
  return expected.length === given.length && timingSafeEqual(Buffer.from(expected), Buffer.from(given));
}

function rawPublic(key: KeyObject): string {
  return (key.export({ format: 'der', type: 'spki' }) as Buffer).subarray(X25519_SPKI.length).toString('base64');
}

function derive(privateKey: KeyObject, peerPub: string, tkey: Buffer, agentId: string, agentNonce: string, coordNonce: string): SessionSecrets {
  const publicKey = createPublicKey({ key: Buffer.concat([X25519_SPKI, Buffer.from(peerPub, 'base64')]), format: 'der', type: 'spki' });
  const shared = diffieHellman({ privateKey, publicKey });
  const okm = Buffer.from(hkdfSync('sha256', shared, tkey, `rxswarm-nats\u0000${agentId}\u0000${agentNonce}\u0000${coordNonce}`, 48));
  return { key: okm.subarray(0, 32), sid: okm.subarray(32, 48).toString('hex') };
}

/** The agent's opening: its hello and what it keeps to finish the handshake. */
export function openHandshake(tkey: Buffer, hello: Omit<NatsHello, 'v' | 'type' | 'pub' | 'nonce' | 'proof'>): { hello: NatsHello; finish(join: NatsJoin): SessionSecrets | undefined } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const pub = rawPublic(publicKey);
  const nonce = randomBytes(16).toString('base64');
  const message: NatsHello = { v: 1, type: 'hello', ...hello, pub, nonce, proof: proof(tkey, ['hello', hello.agentId, hello.role, hello.instance, pub, nonce]) };
  return {
    hello: message,
    // A join whose proof fails came from someone without the token (or was altered): undefined.
    finish: join => {
      if (join.agentId !== hello.agentId) return undefined;
      if (!sameProof(proof(tkey, ['join', join.agentId, pub, nonce, join.pub, join.nonce, join.session]), join.proof)) return undefined;
      try {
        return derive(privateKey, join.pub, tkey, hello.agentId, nonce, join.nonce);
      } catch {
        return undefined; // not a valid X25519 point
      }
    },
  };
}

/** Whether a hello proves the token. */
export function helloProven(tkey: Buffer, hello: NatsHello): boolean {
  return sameProof(proof(tkey, ['hello', hello.agentId, hello.role, hello.instance, hello.pub, hello.nonce]), hello.proof);
}

/** The coordinator's answer to a proven hello: its join (without the coordinator's settings) and the session's secrets; undefined for a bad public key. */
export function acceptHandshake(tkey: Buffer, hello: NatsHello, session: string): { join: Pick<NatsJoin, 'v' | 'type' | 'agentId' | 'session' | 'pub' | 'nonce' | 'proof'>; secrets: SessionSecrets } | undefined {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const pub = rawPublic(publicKey);
  const nonce = randomBytes(16).toString('base64');
  let secrets: SessionSecrets;
  try {
    secrets = derive(privateKey, hello.pub, tkey, hello.agentId, hello.nonce, nonce);
  } catch {
    return undefined;
  }
  return { join: { v: 1, type: 'join', agentId: hello.agentId, session, pub, nonce, proof: proof(tkey, ['join', hello.agentId, hello.pub, hello.nonce, pub, nonce, session]) }, secrets };
}
