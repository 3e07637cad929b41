package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"airlock.dev/airlock/api/v1alpha1"
)

// Bounds of one health check expression's evaluation. The cost is cel-go's
// estimate of the work done (about one unit per operation, and per element
// of a list or map that a macro walks); 1e6 is far above what a check of an
// object's status needs and far below a second of CPU.
const (
	healthExprCostLimit      = 1_000_000
	healthExprInterruptEvery = 100 // comprehension iterations between checks of ctx
)

// healthExprEnv is the CEL environment of spec.healthCheckExprs: the object
// as `self`, the standard library and optional values.
var healthExprEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("self", cel.DynType),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
	)
})

// healthCheck is a compiled spec.healthCheckExprs entry.
type healthCheck struct {
	field                       string // spec.healthCheckExprs[i], for messages
	apiVersion, kind            string
	current, inProgress, failed *healthExpr
}

type healthExpr struct {
	field, source string
	prg           cel.Program
}

// exprError is an expression of spec.healthCheckExprs that does not
// compile, does not return a bool, or runs over its cost limit: a SpecError
// naming the field and the expression, so the Release is Stalled until a
// person fixes it.
func exprError(field, expr string, err error) error {
	return &SpecError{Field: field, Err: fmt.Errorf("%q: %v: fix the expression (CEL reading the object as self and returning a bool, such as self.status.phase == 'Ready')", expr, err)}
}

// healthChecks are a Release's compiled spec.healthCheckExprs, by
// apiVersion and kind.
type healthChecks map[[2]string]*healthCheck

// healthExprCache keeps compiled expressions by source, so that a reconcile
// compiles only the expressions it has not seen.
type healthExprCache struct {
	mu    sync.Mutex
	progs map[string]cel.Program
}

// compileHealthChecks compiles spec.healthCheckExprs; every expression
// that fails is named in the error, as a SpecError (the Release is Stalled
// until it is fixed).
func (c *healthExprCache) compileHealthChecks(exprs []v1alpha1.HealthCheckExpr) (healthChecks, error) {
	if len(exprs) == 0 {
		return nil, nil
	}
	checks := healthChecks{}
	var errs []error
	for i, e := range exprs {
		field := fmt.Sprintf("spec.healthCheckExprs[%d]", i)
		key := [2]string{e.APIVersion, e.Kind}
		if _, dup := checks[key]; dup {
			errs = append(errs, &SpecError{Field: field, Err: fmt.Errorf("a second entry for %s %s: keep one entry per apiVersion and kind", e.APIVersion, e.Kind)})
			continue
		}
		hc := &healthCheck{field: field, apiVersion: e.APIVersion, kind: e.Kind}
		for _, x := range []struct {
			name, src string
			into      **healthExpr
		}{{"failed", e.Failed, &hc.failed}, {"current", e.Current, &hc.current}, {"inProgress", e.InProgress, &hc.inProgress}} {
			if x.src == "" {
				if x.name == "current" {
					errs = append(errs, &SpecError{Field: field + ".current", Err: errors.New("is required: give the expression that is true when the object is healthy")})
				}
				continue
			}
			prg, err := c.compile(x.src)
			if err != nil {
				errs = append(errs, exprError(field+"."+x.name, x.src, err))
				continue
			}
			*x.into = &healthExpr{field: field + "." + x.name, source: x.src, prg: prg}
		}
		checks[key] = hc
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return checks, nil
}

func (c *healthExprCache) compile(src string) (cel.Program, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.progs[src]; ok {
		return p, nil
	}
	env, err := healthExprEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, errors.New(strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("returns %s, not a bool", t)
	}
	prg, err := env.Program(ast, cel.CostLimit(healthExprCostLimit), cel.InterruptCheckFrequency(healthExprInterruptEvery))
	if err != nil {
		return nil, err
	}
	if c.progs == nil || len(c.progs) >= 1000 { // bounded: start again rather than grow
		c.progs = map[string]cel.Program{}
	}
	c.progs[src] = prg
	return prg, nil
}

// evaluate judges obj as Flux does: failed, then current, then inProgress;
// the first that is true decides, and none true is in progress. An object
// whose status.observedGeneration lags behind its generation is in
// progress whatever the expressions say. An expression that cannot be
// evaluated (it reads a field the object does not have yet) counts as not
// true, and is named in the message; one that runs over its cost limit or
// returns no bool is a SpecError.
func (hc *healthCheck) evaluate(ctx context.Context, obj *unstructured.Unstructured) (*status.Result, error) {
	if og, ok, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration"); ok && og != obj.GetGeneration() {
		return &status.Result{Status: status.InProgressStatus,
			Message: fmt.Sprintf("status.observedGeneration %d is behind generation %d", og, obj.GetGeneration())}, nil
	}
	var notes []string
	for _, x := range []struct {
		expr *healthExpr
		st   status.Status
	}{{hc.failed, status.FailedStatus}, {hc.current, status.CurrentStatus}, {hc.inProgress, status.InProgressStatus}} {
		if x.expr == nil {
			continue
		}
		ok, err := x.expr.eval(ctx, obj)
		if err != nil {
			var fatal *SpecError
			if errors.As(err, &fatal) {
				return nil, err
			}
			notes = append(notes, fmt.Sprintf("%s %q: %v", x.expr.field, x.expr.source, err))
			continue
		}
		if ok {
			return &status.Result{Status: x.st, Message: fmt.Sprintf("%s %q is true", x.expr.field, x.expr.source)}, nil
		}
	}
	msg := fmt.Sprintf("%s %q is not true yet", hc.current.field, hc.current.source)
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return &status.Result{Status: status.InProgressStatus, Message: msg}, nil
}

func (x *healthExpr) eval(ctx context.Context, obj *unstructured.Unstructured) (bool, error) {
	val, _, err := x.prg.ContextEval(ctx, map[string]any{"self": obj.Object})
	if err != nil {
		var cancelled interpreter.EvalCancelledError
		if errors.As(err, &cancelled) || ctx.Err() != nil {
			return false, exprError(x.field, x.source, err)
		}
		return false, err
	}
	b, ok := val.Value().(bool)
	if !ok {
		return false, exprError(x.field, x.source, fmt.Errorf("returned %v (%s), not a bool", val.Value(), val.Type().TypeName()))
	}
	return b, nil
}
