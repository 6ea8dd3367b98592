// The cursor: the highest seq this client has delivered, kept per user in storage so a
// reload resumes where the page left off.

import type { CursorStorage } from './types.js';

/** The storage key of a user's cursor. */
export function cursorKey(userId: string): string {
  return 'herald:cursor:' + userId;
}

/**
 * The `sub` claim of a JWT, read from its payload WITHOUT verifying anything (the server
 * verifies; the client only needs a name for its storage key and channel). Throws on a
 * token that is not a JWT with a string sub.
 */
export function jwtSubject(token: string): string {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('herald: token is not a JWT');
  let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
  while (b64.length % 4 !== 0) b64 += '=';
  let json: string;
  try {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    json = new TextDecoder().decode(bytes);
  } catch {
    throw new Error('herald: token payload is not base64url');
  }
  let claims: unknown;
  try {
    claims = JSON.parse(json);
  } catch {
    throw new Error('herald: token payload is not JSON');
  }
  const sub = (claims as { sub?: unknown } | null)?.sub;
  if (typeof sub !== 'string' || sub === '') throw new Error('herald: token has no sub');
  return sub;
}

export class Cursor {
  private value = 0;
  /** When false the cursor is not written back (a follower tab leaves that to the leader). */
  persist = true;

  constructor(
    private readonly storage: CursorStorage | null,
    readonly key: string,
  ) {
    this.value = this.load();
  }

  /** The seq in storage (0 when absent, unreadable or storage is null). */
  load(): number {
    if (!this.storage) return 0;
    try {
      const s = this.storage.getItem(this.key);
      const v = s === null ? 0 : Number(s);
      return Number.isSafeInteger(v) && v > 0 ? v : 0;
    } catch {
      return 0;
    }
  }

  get seq(): number {
    return this.value;
  }

  /** Sets the cursor (also backwards, for a conflict or a rewind) and stores it. */
  set(seq: number): void {
    this.value = seq;
    if (this.persist && this.storage) {
      try {
        this.storage.setItem(this.key, String(seq));
      } catch {
        // Storage full or denied: the in-memory cursor still works for this page.
      }
    }
  }
}
