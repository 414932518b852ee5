/**
 * How the client types answers API Gateway gives itself and the API's error bodies, without a stack:
 * each test hands the client a fetch that answers as API Gateway or a function would.
 *
 * Run from clients/typescript with `npm run unit` (pytest's tests/integration/clients runs it too).
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
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

/** POST /strategies through ``call``: a write without an Idempotency-Key (a second one is a second strategy). */
function createStrategy(klineo: KlineoClient) {
  return klineo.api.POST("/strategies", {
    body: { connection_id: "c".repeat(32), symbol: "BTCUSDT", interval: "1m", type: "sma_crossover", size: "0.002", mode: "live" },
  });
}

test("a write without a key that gets no answer is not retryable: it may have reached the server", async () => {
  // The connection may drop after the request went out: sending it again may create a second live strategy.
  const klineo = unanswered();
  const error = await failure(klineo.call(createStrategy(klineo)));
  assert.equal(error.status, 0);
  assert.equal(error.category, "network");
  assert.equal(error.retryable, false);
});

/** A client whose every answer has ``status`` and headers but whose body breaks off (the connection drops). */
function answerCutOff(status: number): KlineoClient {
  return createKlineoClient({
    baseUrl: "http://127.0.0.1:9",
    token: "token",
    fetch: async () => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"order": {"sta'));
          controller.error(new TypeError("terminated"));
        },
      });
      return new Response(body, { status, headers: { "Content-Type": "application/json" } });
    },
  });
}

test("a close through call() whose answer breaks off mid-body is unknown_outcome with its key", async () => {
  // The close was answered (it ran): only its body was lost, so resend it with the same key, never a new one.
  const klineo = answerCutOff(200);
  const error = await failure(klineo.call(close(klineo, "close-key")));
  assert.equal(error.category, "unknown_outcome");
  assert.equal(error.retryable, false);
  assert.equal(error.idempotencyKey, "close-key");
});

test("a read whose answer breaks off mid-body stays network, retryable", async () => {
  const klineo = answerCutOff(200);
  const error = await failure(klineo.call(klineo.api.GET("/exchange-connections")));
  assert.equal(error.category, "network");
  assert.equal(error.retryable, true);
});

test("over real HTTP, a close whose connection drops mid-body is unknown_outcome with its key", async () => {
  // A loopback server sends the close's 200 head and part of its body, then drops the connection.
  const server = createServer((_request, response) => {
    response.writeHead(200, { "Content-Type": "application/json", "Content-Length": "100" });
    response.write('{"order": {"sta', () => response.socket?.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const klineo = createKlineoClient({ baseUrl: `http://127.0.0.1:${port}`, token: "token" });
    const error = await failure(klineo.call(close(klineo, "close-key")));
    assert.equal(error.category, "unknown_outcome");
    assert.equal(error.idempotencyKey, "close-key");
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

const STRATEGY = { connection_id: "c".repeat(32), symbol: "BTCUSDT", interval: "1m", type: "sma_crossover", size: "0.002", mode: "live" } as const;

test("createStrategy whose answer is lost is unknown_outcome with its key: resending with it cannot make a second strategy", async () => {
  const error = await failure(unanswered().createStrategy(STRATEGY, "create-key"));
  assert.equal(error.status, 0);
  assert.equal(error.category, "unknown_outcome");
  assert.equal(error.retryable, false);
  assert.equal(error.idempotencyKey, "create-key");
});

test("createStrategy sends an Idempotency-Key (a new one unless given) and answers the strategy with it", async () => {
  const sent: (string | null)[] = [];
  const klineo = createKlineoClient({
    baseUrl: "http://127.0.0.1:9",
    token: "token",
    fetch: async (request) => {
      sent.push(request.headers.get("Idempotency-Key"));
      return new Response(JSON.stringify({ id: "s".repeat(32) }), { status: sent.length === 1 ? 201 : 200, headers: { "Content-Type": "application/json" } });
    },
  });
  const first = await klineo.createStrategy(STRATEGY);
  const again = await klineo.createStrategy(STRATEGY, first.idempotencyKey);
  assert.equal(typeof first.idempotencyKey, "string");
  assert.deepEqual(sent, [first.idempotencyKey, first.idempotencyKey]);
  assert.equal(again.strategy.id, first.strategy.id);
});

/** API Gateway's own answer when the function failed without answering (it crashed, ran out of memory or
 * time, or answered something that is not a Lambda proxy result): its status, and a body not our error shape. */
const GATEWAY_FAILURES = [
  [500, { message: "Internal Server Error" }],
  [502, { message: "Bad Gateway" }],
] as const;

for (const [status, body] of GATEWAY_FAILURES) {
  test(`an order API Gateway answered ${status} itself is unknown_outcome with its key: it may have been placed`, async () => {
    const error = await failure(answering(status, body).placeFuturesOrder(ORDER, "order-key"));
    assert.equal(error.status, status);
    assert.equal(error.category, "unknown_outcome");
    assert.equal(error.retryable, false);
    assert.equal(error.idempotencyKey, "order-key");
  });

  test(`a close through call() API Gateway answered ${status} itself is unknown_outcome with its key`, async () => {
    const klineo = answering(status, body);
    const error = await failure(klineo.call(close(klineo, "close-key")));
    assert.equal(error.category, "unknown_outcome");
    assert.equal(error.idempotencyKey, "close-key");
  });

  test(`a read API Gateway answered ${status} itself stays other, without a key`, async () => {
    const klineo = answering(status, body);
    const error = await failure(klineo.call(klineo.api.GET("/exchange-connections")));
    assert.equal(error.category, "other");
    assert.equal(error.idempotencyKey, null);
  });
}

test("over real HTTP, createStrategy that API Gateway answered 500 itself is unknown_outcome with its key", async () => {
  // The function died after it may have written the strategy: only a resend with the same key is safe.
  const server = createServer((_request, response) => {
    response.writeHead(500, { "Content-Type": "application/json" });
    response.end('{"message":"Internal Server Error"}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const klineo = createKlineoClient({ baseUrl: `http://127.0.0.1:${port}`, token: "token" });
    const error = await failure(klineo.createStrategy(STRATEGY, "create-key"));
    assert.equal(error.status, 500);
    assert.equal(error.category, "unknown_outcome");
    assert.equal(error.retryable, false);
    assert.equal(error.idempotencyKey, "create-key");
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test("a keyed request's own error answer (our error shape) keeps its category, even a 500", async () => {
  const body = { error: { category: "other", message: "Unexpected error.", retryable: false, request_id: "r-3" } };
  const error = await failure(answering(500, body).createStrategy(STRATEGY, "create-key"));
  assert.equal(error.category, "other");
  assert.equal(error.idempotencyKey, "create-key");
});
