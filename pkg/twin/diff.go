package twin

import (
	"slices"
	"strings"
)

// Ownership says which keys of a section an object manages.
type Ownership string

const (
	// OwnershipShared manages only the keys the object set: keys written by
	// others are left alone; keys the object set before and no longer
	// wants are removed.
	OwnershipShared Ownership = "Shared"
	// OwnershipExclusive makes the section equal to the spec: every key not
	// in the spec is removed, whoever wrote it.
	OwnershipExclusive Ownership = "Exclusive"
)

// Managed is the set of leaf key paths an object wrote to a section, each
// path the keys from the section root joined with "." (twin keys cannot
// contain "."), sorted. A leaf is a non-object value or an empty object.
type Managed []string

// Diff returns the smallest merge PATCH for one section (tags or desired)
// that makes the keys the spec manages equal to spec in the hub's current
// document, and the new Managed set to remember for next time.
//
// Keys are managed by leaf path: spec {"a":{"b":1}} manages "a.b". A leaf
// is set when the hub's value differs as JSON (numbers by value, so 1 and
// 1.0 are equal); an empty object in the spec only requires an object to
// exist there. With OwnershipShared, leaves in managed but no longer in
// spec are removed with a nested null ({"a":{"b":null}}) if the hub still
// has them; everything else is left alone. With OwnershipExclusive every
// key of current not in spec is removed, at the highest level possible.
// $-prefixed members of current ($metadata, $version) are ignored, so a
// desired section can be passed as the hub returned it.
//
// The patch shares no memory with spec or current. An empty patch (len 0)
// means no write is needed.
func Diff(managed Managed, spec, current map[string]any, ownership Ownership) (patch map[string]any, newManaged Managed) {
	leaves := make(map[string]any)
	collectLeaves(spec, "", leaves)
	patch = make(map[string]any)

	for path, want := range leaves {
		have, found := lookup(current, path)
		if found && leafSatisfied(want, have) {
			continue
		}
		setPath(patch, path, cloneValue(want))
	}

	if ownership == OwnershipExclusive {
		removeUnowned(patch, spec, current, "")
	} else {
		for _, path := range managed {
			if _, wanted := leaves[path]; wanted || overlapsLeaf(path, leaves) {
				continue
			}
			if _, found := lookup(current, path); !found {
				continue
			}
			setPath(patch, path, nil)
		}
	}

	newManaged = make(Managed, 0, len(leaves))
	for path := range leaves {
		newManaged = append(newManaged, path)
	}
	slices.Sort(newManaged)
	return patch, newManaged
}

// collectLeaves records every leaf of obj under its dotted path.
func collectLeaves(obj map[string]any, prefix string, leaves map[string]any) {
	for k, v := range obj {
		path := prefix + k
		if child, ok := v.(map[string]any); ok && len(child) > 0 {
			collectLeaves(child, path+".", leaves)
			continue
		}
		leaves[path] = v
	}
}

// leafSatisfied reports whether the hub's value meets a spec leaf: equal as
// JSON, or any object for an empty-object leaf.
func leafSatisfied(want, have any) bool {
	if w, ok := want.(map[string]any); ok && len(w) == 0 {
		_, isObject := have.(map[string]any)
		return isObject
	}
	return EqualValues(want, have)
}

// lookup returns the value at a dotted path.
func lookup(doc map[string]any, path string) (any, bool) {
	cur := doc
	for {
		key, rest, more := strings.Cut(path, ".")
		v, ok := cur[key]
		if !ok || !more {
			return v, ok
		}
		if cur, ok = v.(map[string]any); !ok {
			return nil, false
		}
		path = rest
	}
}

// setPath stores value at a dotted path of patch, creating objects on the
// way.
func setPath(patch map[string]any, path string, value any) {
	cur := patch
	for {
		key, rest, more := strings.Cut(path, ".")
		if !more {
			cur[key] = value
			return
		}
		next, ok := cur[key].(map[string]any)
		if !ok {
			next = make(map[string]any)
			cur[key] = next
		}
		cur, path = next, rest
	}
}

// overlapsLeaf reports whether path is a spec leaf's ancestor or
// descendant: the spec writes that subtree, so a null there would fight
// the set.
func overlapsLeaf(path string, leaves map[string]any) bool {
	for leaf := range leaves {
		if strings.HasPrefix(leaf, path+".") || strings.HasPrefix(path, leaf+".") {
			return true
		}
	}
	return false
}

// removeUnowned adds a null for every key of current missing from spec,
// recursing where both hold objects.
func removeUnowned(patch, spec, current map[string]any, prefix string) {
	for k, have := range current {
		if strings.HasPrefix(k, "$") {
			continue
		}
		want, inSpec := spec[k]
		if !inSpec {
			setPath(patch, prefix+k, nil)
			continue
		}
		wantObj, ok := want.(map[string]any)
		if !ok {
			continue
		}
		if haveObj, ok := have.(map[string]any); ok {
			removeUnowned(patch, wantObj, haveObj, prefix+k+".")
		}
	}
}
