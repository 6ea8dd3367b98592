import type { CursorStorage } from './types.js';
/** The storage key of a user's cursor. */
export declare function cursorKey(userId: string): string;
/**
 * The `sub` claim of a JWT, read from its payload WITHOUT verifying anything (the server
 * verifies; the client only needs a name for its storage key and channel). Throws on a
 * token that is not a JWT with a string sub.
 */
export declare function jwtSubject(token: string): string;
export declare class Cursor {
    private readonly storage;
    readonly key: string;
    private value;
    /** When false the cursor is not written back (a follower tab leaves that to the leader). */
    persist: boolean;
    constructor(storage: CursorStorage | null, key: string);
    /** The seq in storage (0 when absent, unreadable or storage is null). */
    load(): number;
    get seq(): number;
    /** Sets the cursor (also backwards, for a conflict or a rewind) and stores it. */
    set(seq: number): void;
}
