/**
 * The README walkthrough through the typed client against a running local stack, then one failure of
 * each kind (input, token, ownership, state, exchange, transport) as the typed error.
 *
 * Run from clients/typescript (npm does). Needs KLINEO_API_URL, KLINEO_TOKEN and KLINEO_OTHER_TOKEN (tokens of two users); pytest's
 * tests/e2e/test_typescript_client.py starts the stack and sets them.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { createKlineoClient, KlineoApiError, newIdempotencyKey, type KlineoClient, type Schema } from "../src/index.js";

function env(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run this through tests/e2e/test_typescript_client.py`);
  return value;
}

const API = env("KLINEO_API_URL");
const TOKEN = env("KLINEO_TOKEN");
const OTHER_TOKEN = env("KLINEO_OTHER_TOKEN");

interface DemoAccount {
  id: string;
  environment: "production" | "testnet";
  api_key: string;
  secret: string;
}
const ACCOUNTS: DemoAccount[] = JSON.parse(
  readFileSync(join(process.cwd(), "..", "..", "local", "demo-accounts.json"), "utf8"),
).accounts;

function demoKey(id: string): Schema<"ConnectionCreateRequest"> {
  const account = ACCOUNTS.find((a) => a.id === id);
  assert.ok(account, id);
  return { label: `ts ${id}`, environment: account.environment, key_type: "hmac", api_key: account.api_key, secret: account.secret };
}

const klineo = createKlineoClient({ baseUrl: API, token: TOKEN });

async function createConnection(client: KlineoClient, key: string): Promise<string> {
  const created = await client.call(client.api.POST("/exchange-connections", { body: demoKey(key) }));
  return created.id;
}

/** The walkthrough's order: a 0.005 BTCUSDT market buy. */
function marketBuy(connectionId: string): Schema<"FuturesOrderRequest"> {
  return { connection_id: connectionId, symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.005" };
}

/** The KlineoApiError a call rejects with (fails the test when it resolves). */
async function failure(call: Promise<unknown>): Promise<KlineoApiError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof KlineoApiError, String(error));
    // The request id is asserted where the server sends one (X-Request-Id / error.request_id).
    if (error.status >= 400) {
      assert.ok(error.requestId === null || error.requestId.length > 0);
    }
    return error;
  }
  assert.fail("the call succeeded");
}

test("the README walkthrough: connection, test, balance, futures, idempotent order, paper strategy, tick, run", async () => {
  const { api, call } = klineo;
  const connectionId = await createConnection(klineo, "futures-full");
  const path = { params: { path: { id: connectionId } } };

  const tested = await call(api.POST("/exchange-connections/{id}/test", path));
  assert.equal(tested.ok, true);

  const balance = await call(api.GET("/exchange-connections/{id}/balance", path));
  const assets = new Map(balance.balances.map((b) => [b.asset, b.free]));
  assert.equal(assets.get("USDT"), "10000"); // trimmed, as every amount the API answers
  assert.equal(assets.has("BNB"), false);

  const futures = await call(api.POST("/exchange-connections/{id}/futures/enable", path));
  assert.equal(futures.futures_enabled, true);

  const order = marketBuy(connectionId);
  const first = await klineo.placeFuturesOrder(order);
  const again = await klineo.placeFuturesOrder(order, first.idempotencyKey);
  assert.equal(first.order.source, "placed");
  assert.equal(again.order.source, "existing");
  assert.equal(again.order.order_id, first.order.order_id);

  const strategy = await call(
    api.POST("/strategies", {
      body: {
        connection_id: connectionId,
        symbol: "BTCUSDT",
        interval: "1m",
        type: "sma_crossover",
        parameters: { fast: 5, slow: 20 },
        size: "0.002",
        mode: "paper",
      },
    }),
  );
  // A strategy decides first on the first candle that closes after it was created: a tick in the minute
  // it was created leaves it out. So wait for the next minute's candle to close, as the README does.
  await new Promise((resolve) => setTimeout(resolve, 60_000 - (Date.now() % 60_000) + 1_000));
  // The tick is a local-only route (not in the deployed API, so not in the client): plain fetch.
  const tick = await fetch(`${API}/__local__/scheduler/tick`, { method: "POST" });
  assert.equal(tick.status, 200, await tick.clone().text());
  const detail = await call(api.GET("/strategies/{id}", { params: { path: { id: strategy.id } } }));
  assert.ok(detail.runs.length > 0, JSON.stringify(detail));
  assert.equal(detail.runs[0]?.mode, "paper");
});

test("invalid input: 422 invalid_request naming the field, never echoing the value", async () => {
  const body = { ...demoKey("futures-full"), api_key: "not a key" };
  const error = await failure(klineo.call(klineo.api.POST("/exchange-connections", { body })));
  assert.equal(error.status, 422);
  assert.equal(error.category, "invalid_request");
  assert.match(error.field ?? "", /(^|\.)api_key$/);
  assert.equal(error.retryable, false);
  assert.ok(!error.message.includes("not a key"), error.message);
});

test("no valid token: API Gateway's 401 becomes category unauthorized", async () => {
  const stranger = createKlineoClient({ baseUrl: API, token: "not-a-token" });
  const error = await failure(stranger.call(stranger.api.GET("/exchange-connections")));
  assert.equal(error.status, 401);
  assert.equal(error.category, "unauthorized");
  assert.equal(error.message, "Unauthorized");
});

test("another user's connection: 404 not_found", async () => {
  const connectionId = await createConnection(klineo, "futures-full");
  const other = createKlineoClient({ baseUrl: API, token: async () => OTHER_TOKEN });
  const error = await failure(
    other.call(other.api.GET("/exchange-connections/{id}/balance", { params: { path: { id: connectionId } } })),
  );
  assert.equal(error.status, 404);
  assert.equal(error.category, "not_found");
});

test("state conflict: an Idempotency-Key reused for another order is 409 conflict on that header", async () => {
  const connectionId = await createConnection(klineo, "futures-full");
  await klineo.call(
    klineo.api.POST("/exchange-connections/{id}/futures/enable", { params: { path: { id: connectionId } } }),
  );
  const order = marketBuy(connectionId);
  const key = newIdempotencyKey();
  await klineo.placeFuturesOrder(order, key);
  const error = await failure(klineo.placeFuturesOrder({ ...order, quantity: "0.006" }, key));
  assert.equal(error.status, 409);
  assert.equal(error.category, "conflict");
  assert.equal(error.field?.toLowerCase(), "idempotency-key");
  assert.equal(error.idempotencyKey, key);
});

test("exchange refusal: futures on a spot-only key is Binance's permission error", async () => {
  const connectionId = await createConnection(klineo, "spot-only");
  const error = await failure(
    klineo.call(klineo.api.POST("/exchange-connections/{id}/futures/enable", { params: { path: { id: connectionId } } })),
  );
  assert.equal(error.status, 403);
  assert.equal(error.category, "permission");
  assert.equal(error.retryable, false);
});

test("no answer: an unreachable API is network (retryable); a lost order answer is unknown_outcome", async () => {
  const closed = createKlineoClient({ baseUrl: "http://127.0.0.1:9", token: TOKEN });
  const read = await failure(closed.call(closed.api.GET("/exchange-connections")));
  assert.equal(read.status, 0);
  assert.equal(read.category, "network");
  assert.equal(read.retryable, true);

  const order = await failure(
    closed.placeFuturesOrder(
      marketBuy("any-connection"),
      "kept-key",
    ),
  );
  assert.equal(order.category, "unknown_outcome");
  assert.equal(order.retryable, false);
  assert.equal(order.idempotencyKey, "kept-key");
});
