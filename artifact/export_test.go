package artifact

// SetTagLimits lowers the tag listing bounds for a test and returns the
// function that restores them.
func SetTagLimits(pages, tags int) (restore func()) {
	old := tagLimits
	tagLimits.pages, tagLimits.tags = pages, tags
	return func() { tagLimits = old }
}
