package twin

// Section names one of the three writable parts of a twin.
type Section int

// The sections of a twin, each with its own size limit.
const (
	SectionTags Section = iota + 1
	SectionDesired
	SectionReported
)

// Size limits of the sections in bytes, counted as Size counts them.
const (
	MaxTagsSize     = 8 * 1024
	MaxDesiredSize  = 32 * 1024
	MaxReportedSize = 32 * 1024
)

// Path returns the section's path from the twin root ("tags",
// "properties.desired", "properties.reported"), the prefix of Error.Path.
func (s Section) Path() string {
	switch s {
	case SectionTags:
		return "tags"
	case SectionDesired:
		return "properties.desired"
	case SectionReported:
		return "properties.reported"
	}
	return ""
}

// String implements fmt.Stringer.
func (s Section) String() string { return s.Path() }

// MaxSize returns the section's size limit in bytes.
func (s Section) MaxSize() int {
	switch s {
	case SectionTags:
		return MaxTagsSize
	case SectionDesired:
		return MaxDesiredSize
	case SectionReported:
		return MaxReportedSize
	}
	return 0
}

// displayName is the section name in IoT Hub's size error text.
func (s Section) displayName() string {
	switch s {
	case SectionTags:
		return "Tags"
	case SectionDesired:
		return "Properties.Desired"
	case SectionReported:
		return "Properties.Reported"
	}
	return ""
}
