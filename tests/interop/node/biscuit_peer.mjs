// The independent Biscuit implementation (@biscuit-auth/biscuit-wasm, Rust compiled to WebAssembly)
// as a peer for Custos's interop tests and benchmark. Reads one JSON array of requests on stdin and
// writes one JSON array of results on stdout, so a test pays node's start-up once.
//
// Requests ({"op": ...}):
//   mint      {private, code, algorithm?}       -> {token}
//   keypair   {algorithm}                        -> {private, public}
//   verify    {root, token, authorizer}          -> {authorized, error?, blocks[], revocation_ids[]}
//   attenuate {root, token, code}                -> {token}
//   seal      {root, token}                      -> {token}
//   bench     {root, token, authorizer, n}       -> {median_ns, ops_per_s, spurious_timeouts}
// Keys are in Biscuit's text form ("ed25519/<hex>", "ed25519-private/<hex>", "secp256r1/..."),
// tokens are lowercase hex. A failing request yields {error: "<message>"} and the others still run.
// The library logs on load; stdout carries only the results.
console.log = (...args) => console.error(...args);
const biscuit = await import("@biscuit-auth/biscuit-wasm");

const { Biscuit, KeyPair, PrivateKey, PublicKey, SignatureAlgorithm, AuthorizerBuilder } = biscuit;

function algorithmOf(text) {
  return text.startsWith("secp256r1") ? SignatureAlgorithm.Secp256r1 : SignatureAlgorithm.Ed25519;
}

// PublicKey.fromString takes the bare hex; the algorithm comes from the text form's prefix.
function rootKey(text) {
  return PublicKey.fromString(text.slice(text.indexOf("/") + 1), algorithmOf(text));
}

function decode(token, root) {
  return Biscuit.fromBytes(new Uint8Array(Buffer.from(token, "hex")), rootKey(root));
}

function encode(token) {
  return Buffer.from(token.toBytes()).toString("hex");
}

// Throws the library's error if the request is not authorized. Wasm objects are freed explicitly:
// the JS collector does not reclaim wasm memory, and the benchmark makes thousands.
function authorize(token, code) {
  const builder = new AuthorizerBuilder();
  builder.addCode(code);
  const authorizer = builder.buildAuthenticated(token);
  try {
    // max_time is effectively off: under node this build's run timer reports timeouts after a few
    // ms whatever limit is given (seen with 1 s), which would make the peer fail at random.
    authorizer.authorizeWithLimits({ max_facts: 1000, max_iterations: 100, max_time_micro: 1e9 });
  } finally {
    authorizer.free();  // the builder was consumed by buildAuthenticated
  }
}

// The library throws structured objects (e.g. {"FailedLogic": ...}); JS errors carry a message.
function describe(e) {
  if (e instanceof Error) return e.message;
  return typeof e === "string" ? e : JSON.stringify(e);
}

function verify(req) {
  const token = decode(req.token, req.root);
  const blocks = [];
  for (let i = 0; i < token.countBlocks(); i++) blocks.push(token.getBlockSource(i));
  const revocation_ids = token.getRevocationIdentifiers().map((id) => String(id));
  try {
    authorize(token, req.authorizer);
    return { authorized: true, blocks, revocation_ids };
  } catch (e) {
    return { authorized: false, error: describe(e), blocks, revocation_ids };
  }
}

function bench(req) {
  const bytes = new Uint8Array(Buffer.from(req.token, "hex"));
  const root = rootKey(req.root);
  const samples = [];
  const batch = 50;
  let spurious_timeouts = 0;  // see authorize(): counted, and the call still timed
  for (let done = 0; done < req.n; done += batch) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) {
      const token = Biscuit.fromBytes(bytes, root);
      try {
        authorize(token, req.authorizer);
      } catch (e) {
        if (!describe(e).includes("Timeout")) throw e;
        spurious_timeouts++;
      }
      token.free();
    }
    samples.push(Number(process.hrtime.bigint() - start) / batch);
  }
  samples.sort((a, b) => a - b);
  const median_ns = samples[Math.floor(samples.length / 2)];
  return { median_ns, ops_per_s: 1e9 / median_ns, spurious_timeouts };
}

const handlers = {
  keypair(req) {
    const kp = new KeyPair(algorithmOf(req.algorithm ?? "ed25519"));
    return { private: kp.getPrivateKey().toString(), public: kp.getPublicKey().toString() };
  },
  mint(req) {
    const builder = Biscuit.builder();
    builder.addCode(req.code);
    return { token: encode(builder.build(PrivateKey.fromString(req.private))) };
  },
  verify,
  attenuate(req) {
    const block = Biscuit.block_builder();
    block.addCode(req.code);
    return { token: encode(decode(req.token, req.root).appendBlock(block)) };
  },
  seal(req) {
    return { token: encode(decode(req.token, req.root).sealToken()) };
  },
  bench,
};

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const requests = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = requests.map((req) => {
  try {
    const handler = handlers[req.op];
    if (!handler) return { error: `unknown op ${req.op}` };
    return handler(req);
  } catch (e) {
    return { error: describe(e) };
  }
});
process.stdout.write(JSON.stringify(results));
