// Package esdbcore is what es/eventstoredb and es/kurrentdb share: their
// options, the connection each Store owns (connecting, probing, retiring a
// lost client), calls bounded by the call timeout, the mapping of errors to
// es's, reads and the resubscription loop.
//
// It imports neither client: EventStore-Client-Go v4 and KurrentDB-Client-Go
// register the same protobuf names and cannot be linked into one binary.
// [Core] is generic over the client type, and each package gives it a
// [Driver]: how to connect a client, close it and classify its errors.
package esdbcore
