// fastify compiles every route's JSON schemas (ajv validators, fast-json-stringify serializers)
// while it gets ready: at a start that was a fifth of node-mgr's CPU, mostly ajv compiling its
// meta-schema and the validators of routes that most runs never call. These builders hand fastify
// the same compilers, with the same options, each compiling on its route's first request instead.
import AjvCompiler from '@fastify/ajv-compiler';
import SerializerSelector from '@fastify/fast-json-stringify-compiler';

type ValidatorFactory = AjvCompiler.BuildCompilerFromPool;
type Validate = ReturnType<ReturnType<ValidatorFactory>>;
type SerializerFactory = SerializerSelector.SerializerFactory;
type Serialize = SerializerSelector.Serializer;

export interface LazySchemas {
  /** fastify's `schemaController.compilersFactory`. */
  compilersFactory: { buildValidator: ValidatorFactory; buildSerializer: SerializerFactory };
  /** Compiles every schema not compiled yet, as a start used to; throws the first one that does not compile. */
  compileAll(): void;
}

/**
 * Note: fastify treats these as custom compilers, so it no longer lower-cases the names of a
 * `headers` schema's properties for ajv; no route validates headers with a schema.
 */
export function lazySchemas(): LazySchemas {
  const pending = new Set<() => void>();
  const buildValidator: ValidatorFactory = (externalSchemas, options) => {
    const compile = AjvCompiler()(externalSchemas, options);
    return (route) => {
      const ensure = onFirstUse(pending, route, () => compile(route));
      // fastify reads `errors` off the function it called, after each call.
      const validate = ((data: unknown, dataCxt?: unknown) => {
        const fn = ensure();
        const result = (fn as (data: unknown, dataCxt?: unknown) => unknown)(data, dataCxt);
        validate.errors = fn.errors;
        return result;
      }) as Validate;
      // fastify hands the parent object (so ajv may coerce a root value) only to a function that
      // has a schemaEnv, as ajv's own do.
      Object.assign(validate, { schemaEnv: true });
      return validate;
    };
  };
  const buildSerializer: SerializerFactory = (externalSchemas, options) => {
    const compile = SerializerSelector()(externalSchemas, options);
    return (route) => {
      const ensure = onFirstUse<Serialize>(pending, route, () => compile(route));
      return (doc) => ensure()(doc);
    };
  };
  return {
    compilersFactory: { buildValidator, buildSerializer },
    compileAll() {
      for (const ensure of [...pending]) ensure();
    },
  };
}

type Route = { method?: string; url?: string; httpPart?: string; httpStatus?: string };

/** The compiled schema, compiled at the first call; listed in `pending` until then (compileAll). */
function onFirstUse<T>(pending: Set<() => void>, route: Route, compile: () => T): () => T {
  let compiled: T | undefined;
  const ensure = (): T => {
    pending.delete(ensure);
    compiled ??= compiling(route, compile);
    return compiled;
  };
  pending.add(ensure);
  return ensure;
}

/** A schema that does not compile is named by its route, as fastify names it at start. */
function compiling<T>(route: Route, compile: () => T): T {
  try {
    return compile();
  } catch (err) {
    const part = route.httpPart ?? (route.httpStatus ? `${route.httpStatus} reply` : 'schema');
    throw new Error(`the ${part} schema of ${route.method ?? '?'} ${route.url ?? '?'} does not compile: ${(err as Error).message}`, { cause: err });
  }
}
