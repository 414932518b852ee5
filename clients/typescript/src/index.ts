/**
 * The KLINEO Binance backend's typed client: openapi-fetch over the types generated from openapi.json,
 * plus the three things every call needs and the generator cannot make: the bearer token, an
 * Idempotency-Key on orders and strategy creates, and one typed error for every failure.
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";

import type { components, paths } from "./generated/schema.js";

export type { components, paths } from "./generated/schema.js";

/** A schema of the API by name, e.g. `Schema<"FuturesOrderRequest">`. */
export type Schema<Name extends keyof components["schemas"]> = components["schemas"][Name];

/** The generated client: `api.GET("/strategies/{id}", { params: { path: { id } } })` and so on. */
export type KlineoApi = Client<paths>;

/** Where a token comes from: a fixed string, or a function asked before every call (refreshing JWTs). */
export type TokenSource = string | (() => string | Promise<string>);

/**
 * Categories of the API's error body (`error.category`), plus what the client adds itself:
 * `unauthorized` (API Gateway's 401), `network` (no answer: retryable for a read only, since a write may
 * have reached the server) and, for a request sent with an Idempotency-Key (an order, a position close, a
 * strategy create), `unknown_outcome` when the answer was lost after sending or API Gateway answered a 5xx of
 * its own (the function timed out or failed without answering).
 */
export type ErrorCategory = Schema<"ErrorBody">["category"] | "unauthorized";

export interface KlineoClientOptions {
  /** The API's base URL: `http://127.0.0.1:3000` locally, the `ApiUrl` output when deployed. */
  baseUrl: string;
  /** The user's JWT (without `Bearer `). */
  token: TokenSource;
  /** A fetch to use instead of `globalThis.fetch` (tests, instrumentation). */
  fetch?: (input: Request) => Promise<Response>;
}

/** Every failed call: one error with the API's category, message, field, retryable and request id. */
export class KlineoApiError extends Error {
  override readonly name = "KlineoApiError";

  constructor(
    /** HTTP status, or 0 when no answer arrived. */
    readonly status: number,
    readonly category: ErrorCategory,
    message: string,
    /** The input field at fault, when one is. */
    readonly field: string | null,
    /** True when sending the same request again later is safe and may succeed. */
    readonly retryable: boolean,
    /** The request id support can find in the logs (error body `request_id`, else `X-Request-Id`). */
    readonly requestId: string | null,
    /** Seconds to wait before a retry, from `Retry-After`. */
    readonly retryAfter: number | null,
    /** The Idempotency-Key the order, close or strategy create was sent with: resend with it after `unknown_outcome`. */
    readonly idempotencyKey: string | null = null,
    /** Every input field at fault (a 422 lists them all; `field` is the first), else empty. */
    readonly errors: Schema<"FieldError">[] = [],
  ) {
    super(message);
  }
}

/** What an error answer may hold: the function's body (request_id once the server sends it) or API Gateway's. */
interface ErrorShape {
  error?: Partial<Schema<"ErrorBody">> & { request_id?: string | null };
  message?: string;
}

const GATEWAY_CATEGORIES: Record<number, ErrorCategory> = {
  401: "unauthorized", 403: "permission", 404: "not_found", 429: "rate_limit",
};
/** API Gateway's throttling refuses a request before any function runs: sending it again later is safe. */
const GATEWAY_RETRYABLE = new Set<number>([429]);

/** The category of an answer API Gateway gave itself. A 5xx of its own means the function gave no answer of
 * ours: it outlived the integration timeout (503/504, and it goes on), or it crashed, ran out of memory or
 * time, or answered malformed (500/502), possibly after its write. So a request sent with a key (an order, a
 * position close, a strategy create) is then unknown_outcome, as when no answer arrived (``noAnswerError``):
 * resend it with the same key. */
function gatewayCategory(status: number, idempotencyKey: string | null): ErrorCategory {
  if (idempotencyKey !== null && status >= 500) {
    return "unknown_outcome";
  }
  return GATEWAY_CATEGORIES[status] ?? (status >= 500 ? "other" : "invalid_request");
}

/** The typed error of an answer with an error status (the function's `{"error": ...}` or API Gateway's `{"message"}`). */
export function errorFromResponse(response: Response, body: unknown, idempotencyKey: string | null = null): KlineoApiError {
  const shape: ErrorShape = typeof body === "object" && body !== null ? (body as ErrorShape) : {};
  const retryAfterHeader = response.headers.get("Retry-After");
  const retryAfter = retryAfterHeader !== null && retryAfterHeader !== "" ? Number(retryAfterHeader) : null;
  const headerRequestId = response.headers.get("X-Request-Id");
  if (shape.error !== undefined) {
    const error = shape.error;
    return new KlineoApiError(
      response.status,
      error.category ?? "other",
      error.message ?? response.statusText,
      error.field ?? null,
      error.retryable ?? false,
      error.request_id ?? headerRequestId,
      retryAfter,
      idempotencyKey,
      error.errors ?? [],
    );
  }
  return new KlineoApiError(
    response.status,
    gatewayCategory(response.status, idempotencyKey),
    shape.message ?? response.statusText,
    null,
    GATEWAY_RETRYABLE.has(response.status),
    headerRequestId,
    retryAfter,
    idempotencyKey,
  );
}

/** A fresh Idempotency-Key (a UUID); keep it to resend the same order or create after a lost answer. */
export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

function authMiddleware(token: TokenSource): Middleware {
  return {
    async onRequest({ request }) {
      const value = typeof token === "function" ? await token() : token;
      request.headers.set("Authorization", `Bearer ${value}`);
      return request;
    },
  };
}

const LOST_KEYED_ANSWER =
  "The request was sent but no answer arrived; resend it with the same Idempotency-Key to learn its outcome.";
const LOST_WRITE_ANSWER =
  "The request was sent but no answer arrived, so it may have been done: read the state back before sending it again.";
const UNREACHABLE = "The API could not be reached.";

/** Methods that only read: sending one again is always safe. */
const READ_METHODS = new Set(["GET", "HEAD"]);

/** The error of a request that got no whole answer. It may have reached the server: one sent with an
 * Idempotency-Key (an order, a close, a strategy create) is unknown_outcome carrying the key; any other write
 * is not retryable (a second POST /strategies without a key is a second strategy); only a read is. */
function noAnswerError(request: Request): KlineoApiError {
  const key = request.headers.get("Idempotency-Key");
  if (key !== null) {
    return new KlineoApiError(0, "unknown_outcome", LOST_KEYED_ANSWER, null, false, null, null, key);
  }
  const read = READ_METHODS.has(request.method);
  return new KlineoApiError(0, "network", read ? UNREACHABLE : LOST_WRITE_ANSWER, null, read, null, null);
}

/** A fetch that resolves only with a whole answer: the body is read in full (a clone; the answer keeps its
 * own) before openapi-fetch parses it, so a connection dropped before or during the answer is
 * ``noAnswerError`` of the request that was sent, not a parse error typed without it. */
function wholeAnswerFetch(base?: (input: Request) => Promise<Response>): (input: Request) => Promise<Response> {
  return async (request) => {
    try {
      const response = await (base ? base(request) : globalThis.fetch(request));
      await response.clone().arrayBuffer();
      return response;
    } catch {
      throw noAnswerError(request);
    }
  };
}

/** The Idempotency-Key each answer's request was sent with (``keyedRequestMiddleware``): an answer alone
 * does not say it, and ``call`` needs it to type a keyed request's error as ``placeFuturesOrder`` does. */
const SENT_KEYS = new WeakMap<Response, string>();

/** A request sent with an Idempotency-Key (an order, a position close, a strategy create) moves money, and only a resend with
 * the same key is safe when its outcome is unknown. Its answer's key is noted (``SENT_KEYS``), so that API
 * Gateway's own 5xx to it (a timeout, a crashed function) is unknown_outcome carrying the key too, not `other`
 * (no answer at all is ``noAnswerError``). */
function keyedRequestMiddleware(): Middleware {
  return {
    onResponse({ request, response }) {
      const key = request.headers.get("Idempotency-Key");
      if (key !== null) {
        SENT_KEYS.set(response, key);
      }
      return undefined;
    },
  };
}

/** The answer's data, or a KlineoApiError (also when the request never got an answer). */
async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
  noAnswer: ErrorCategory,
  idempotencyKey: string | null = null,
): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await call;
  } catch (error) {
    if (error instanceof KlineoApiError) {
      throw error; // typed already (``noAnswerError``)
    }
    const message = noAnswer === "unknown_outcome" ? LOST_KEYED_ANSWER : UNREACHABLE;
    throw new KlineoApiError(0, noAnswer, message, null, noAnswer !== "unknown_outcome", null, null, idempotencyKey);
  }
  if (!result.response.ok) {
    throw errorFromResponse(result.response, result.error, idempotencyKey ?? SENT_KEYS.get(result.response) ?? null);
  }
  return result.data as T;
}

/** A request sent with ``idempotencyKey`` as its header: its data, or a KlineoApiError, `unknown_outcome`
 * carrying the key when its answer was lost (resend it with the same key). */
function keyed<T>(
  idempotencyKey: string,
  send: (header: { "idempotency-key": string }) => Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  return unwrap(send({ "idempotency-key": idempotencyKey }), "unknown_outcome", idempotencyKey);
}

/** The client: `api` is the whole generated surface; `call`, `placeFuturesOrder` and `createStrategy` turn
 * failures into KlineoApiError. */
export interface KlineoClient {
  api: KlineoApi;
  /** Await a generated call and return its data, or throw KlineoApiError; a request sent with an
   * Idempotency-Key (a position close) whose outcome is unknown is unknown_outcome carrying that key. */
  call<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T>;
  /** POST /futures/order with an Idempotency-Key (a new one unless given); resend with the same key after unknown_outcome. */
  placeFuturesOrder(
    order: Schema<"FuturesOrderRequest">,
    idempotencyKey?: string,
  ): Promise<{ order: Schema<"FuturesOrderResponse">; idempotencyKey: string }>;
  /** POST /strategies with an Idempotency-Key (a new one unless given): after `unknown_outcome`, resend with
   * the same key and body to get the strategy the first request made (never a second one). */
  createStrategy(
    strategy: Schema<"StrategyCreateRequest">,
    idempotencyKey?: string,
  ): Promise<{ strategy: Schema<"StrategyResponse">; idempotencyKey: string }>;
}

/** A client for one user: every call carries `Authorization: Bearer <token>`. */
export function createKlineoClient(options: KlineoClientOptions): KlineoClient {
  const api = createClient<paths>({ baseUrl: options.baseUrl.replace(/\/+$/, ""), fetch: wholeAnswerFetch(options.fetch) });
  api.use(authMiddleware(options.token), keyedRequestMiddleware());
  return {
    api,
    call: (request) => unwrap(request, "network"),
    async placeFuturesOrder(order, idempotencyKey = newIdempotencyKey()) {
      const placed = await keyed(idempotencyKey, (header) => api.POST("/futures/order", { body: order, params: { header } }));
      return { order: placed, idempotencyKey };
    },
    async createStrategy(strategy, idempotencyKey = newIdempotencyKey()) {
      const created = await keyed(idempotencyKey, (header) => api.POST("/strategies", { body: strategy, params: { header } }));
      return { strategy: created, idempotencyKey };
    },
  };
}
