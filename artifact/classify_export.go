package artifact

// ClassifyError turns an error from oras-go or go-containerregistry into a
// *RegistryError whose Kind is one of the Err… sentinels (ErrUnreachable,
// ErrUnauthorized, ErrNotFound, …) and whose message names ref and what to do.
// op names the operation ("resolve", "fetch signatures", …). A nil err stays
// nil, and an error that is already a *RegistryError is returned unchanged.
func ClassifyError(op string, ref Reference, err error) error {
	return classify(op, ref, err)
}
