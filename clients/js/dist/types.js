// Shared types of the Herald client. Everything here is part of the public API.
export {};
