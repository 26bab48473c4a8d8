package lifecycle

import (
	"reflect"
	"testing"
)

// SameView tells apart two views that differ in any one field: a field it
// does not compare would let a cache keep serving a stale encoding.
func TestSameViewSeesEveryField(t *testing.T) {
	typ := reflect.TypeFor[PodView]()
	var zero PodView
	if !SameView(&zero, &zero) {
		t.Fatal("a view is not the same as itself")
	}
	for i := 0; i < typ.NumField(); i++ {
		var changed PodView
		reflect.ValueOf(&changed).Elem().Field(i).Set(differentValue(typ.Field(i).Type))
		if SameView(&zero, &changed) || SameView(&changed, &zero) {
			t.Errorf("SameView does not compare PodView.%s", typ.Field(i).Name)
		}
		if !SameView(&changed, &changed) {
			t.Errorf("PodView.%s: a view is not the same as itself", typ.Field(i).Name)
		}
	}
}
