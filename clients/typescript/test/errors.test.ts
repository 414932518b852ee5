/**
 * How the client types answers API Gateway gives itself and the API's error bodies, without a stack:
 * each test hands the client a fetch that answers as API Gateway or a function would.
 *
 * Run from clients/typescript with `npm run unit` (pytest's tests/integration/clients runs it too).
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { createKlineoClient, KlineoApiError, type KlineoClient } from "../src/index.js";

/** A client whose every request is answered with ``status`` and the JSON ``body`` (and ``headers``). */
function answering(status: number, body: unknown, headers: Record<string, string> = {}): KlineoClient {
  return createKlineoClient({
    baseUrl: "http://127.0.0.1:9",
    token: "token",
    fetch: async () =>
      new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } }),
  });
}

/** A client whose every request gets no answer (fetch rejects, as when the connection drops). */
function unanswered(): KlineoClient {
  return createKlineoClient({
    baseUrl: "http://127.0.0.1:9",
    token: "token",
    fetch: async () => {
      throw new TypeError("fetch failed");
    },
  });
}

/** The KlineoApiError a call rejects with (fails the test when it resolves). */
async function failure(call: Promise<unknown>): Promise<KlineoApiError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof KlineoApiError, String(error));
    return error;
  }
  assert.fail("the call succeeded");
}

const ORDER = { connection_id: "c".repeat(32), symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.005" } as const;

test("API Gateway's throttling 429 is rate_limit, retryable after Retry-After", async () => {
  const klineo = answering(429, { message: "Too Many Requests" }, { "Retry-After": "1" });
  const error = await failure(klineo.call(klineo.api.GET("/exchange-connections")));
  assert.equal(error.status, 429);
  assert.equal(error.category, "rate_limit");
  assert.equal(error.retryable, true);
  assert.equal(error.retryAfter, 1);
});

test("an order whose function outlived API Gateway's timeout (503 Service Unavailable) is unknown_outcome", async () => {
  // The function goes on after the gateway's 30 s and may place the order: resend with the same key.
  const klineo = answering(503, { message: "Service Unavailable" });
  const error = await failure(klineo.placeFuturesOrder(ORDER, "kept-key"));
  assert.equal(error.status, 503);
  assert.equal(error.category, "unknown_outcome");
  assert.equal(error.retryable, false);
  assert.equal(error.idempotencyKey, "kept-key");
});

test("a 422 keeps every field that failed (error.errors), not only the first (error.field)", async () => {
  const errors = [
    { field: "quantity", message: "must be above 0" },
    { field: "symbol", message: "must match ^[A-Z0-9]{2,20}$" },
  ];
  const body = { error: { category: "invalid_request", message: "2 invalid fields", retryable: false,
                          request_id: "r-1", field: "quantity", errors } };
  const klineo = answering(422, body);
  const error = await failure(klineo.placeFuturesOrder(ORDER));
  assert.equal(error.field, "quantity");
  assert.deepEqual(error.errors, errors);
});

test("a position close (a money POST with an Idempotency-Key) whose answer is lost is unknown_outcome with its key", async () => {
  const klineo = unanswered();
  const close = klineo.api.POST("/exchange-connections/{id}/futures/positions/{symbol}/close", {
    params: { path: { id: "c".repeat(32), symbol: "BTCUSDT" }, header: { "idempotency-key": "close-key" } },
  });
  const error = await failure(klineo.call(close));
  assert.equal(error.category, "unknown_outcome");
  assert.equal(error.retryable, false);
  assert.equal(error.idempotencyKey, "close-key");
});

/** POST .../positions/{symbol}/close through ``call``, sent with ``key`` as its Idempotency-Key. */
function close(klineo: KlineoClient, key: string) {
  return klineo.api.POST("/exchange-connections/{id}/futures/positions/{symbol}/close", {
    params: { path: { id: "c".repeat(32), symbol: "BTCUSDT" }, header: { "idempotency-key": key } },
  });
}

for (const status of [503, 504]) {
  test(`a position close through call() that API Gateway timed out on (${status}) is unknown_outcome with its key`, async () => {
    // The close function goes on after the gateway's 30 s and may close the position: resend with the same key.
    const klineo = answering(status, { message: status === 503 ? "Service Unavailable" : "Gateway Timeout" });
    const error = await failure(klineo.call(close(klineo, "close-key")));
    assert.equal(error.status, status);
    assert.equal(error.category, "unknown_outcome");
    assert.equal(error.retryable, false);
    assert.equal(error.idempotencyKey, "close-key");
  });
}

test("a function's error answer to a close through call() carries the close's key", async () => {
  const body = { error: { category: "conflict", message: "No position to close.", retryable: false, request_id: "r-2" } };
  const klineo = answering(409, body);
  const error = await failure(klineo.call(close(klineo, "close-key")));
  assert.equal(error.category, "conflict");
  assert.equal(error.idempotencyKey, "close-key");
});

test("a read API Gateway timed out on stays other, without a key", async () => {
  const klineo = answering(503, { message: "Service Unavailable" });
  const error = await failure(klineo.call(klineo.api.GET("/exchange-connections")));
  assert.equal(error.category, "other");
  assert.equal(error.idempotencyKey, null);
});

test("a read that gets no answer stays network, retryable", async () => {
  const klineo = unanswered();
  const error = await failure(klineo.call(klineo.api.GET("/exchange-connections")));
  assert.equal(error.category, "network");
  assert.equal(error.retryable, true);
  assert.equal(error.idempotencyKey, null);
});
