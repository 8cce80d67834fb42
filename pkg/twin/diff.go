package twin

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
// $-prefixed members of current ($metadata, $version) are ignored.
//
// An empty patch (len 0) means no write is needed.
func Diff(managed Managed, spec, current map[string]any, ownership Ownership) (patch map[string]any, newManaged Managed) {
	return nil, nil
}
