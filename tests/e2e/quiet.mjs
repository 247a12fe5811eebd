// oidc-provider prints dev-mode notices (dev interactions, dev keys, "Node 20 unsupported", ...)
// through console.warn / console.info, some at import time and some lazily on first use. They are
// expected in these tests; drop them unless E2E_VERBOSE is set. Imported before oidc-provider.
if (!process.env.E2E_VERBOSE) {
  for (const level of ['warn', 'info']) {
    const orig = console[level].bind(console);
    console[level] = (...args) => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider ')) return;
      orig(...args);
    };
  }
}
