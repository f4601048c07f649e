package esdbtest

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
)

// streamsService serves the Streams service: reads and subscriptions,
// Append, BatchAppend (which the Node.js and .NET clients use, the v4 Go
// client never), Delete and Tombstone.
type streamsService struct {
	api.UnimplementedStreamsServer
	srv *Server
}

// featuresService serves the ServerFeatures service.
type featuresService struct {
	serverfeatures.UnimplementedServerFeaturesServer
	srv *Server
}

// GetSupportedMethods reports the server version and the methods served,
// in EventStoreDB's lower-case naming.
func (f *featuresService) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	const (
		streams  = "event_store.client.streams.streams"
		features = "event_store.client.server_features.serverfeatures"
		gossipS  = "event_store.client.gossip.gossip"
		ps       = "event_store.client.persistent_subscriptions.persistentsubscriptions"
	)
	methods := []*serverfeatures.SupportedMethod{
		{ServiceName: streams, MethodName: "read", Features: []string{"position", "events"}},
		{ServiceName: streams, MethodName: "append"},
		{ServiceName: streams, MethodName: "batchappend"},
		{ServiceName: streams, MethodName: "delete"},
		{ServiceName: streams, MethodName: "tombstone"},
		{ServiceName: features, MethodName: "getsupportedmethods"},
		{ServiceName: gossipS, MethodName: "read"},
		{ServiceName: ps, MethodName: "create", Features: []string{"stream", "all"}},
		{ServiceName: ps, MethodName: "update", Features: []string{"stream", "all"}},
		{ServiceName: ps, MethodName: "delete", Features: []string{"stream", "all"}},
		{ServiceName: ps, MethodName: "read", Features: []string{"stream", "all"}},
		{ServiceName: ps, MethodName: "getinfo", Features: []string{"stream", "all"}},
		{ServiceName: ps, MethodName: "replayparked", Features: []string{"stream", "all"}},
		{ServiceName: ps, MethodName: "list", Features: []string{"stream", "all"}},
		{ServiceName: ps, MethodName: "restartsubsystem", Features: []string{"stream", "all"}},
	}
	if f.srv.cfg.kurrentDB25() {
		methods = append(methods, &serverfeatures.SupportedMethod{ServiceName: v2StreamsService, MethodName: "appendsession"})
	}
	return &serverfeatures.SupportedMethods{
		Methods:                 methods,
		EventStoreServerVersion: f.srv.cfg.version,
	}, nil
}

// gossipService serves the Gossip service: a cluster of one leader, so
// that `esdb+discover://` connection strings work too.
type gossipService struct {
	gossip.UnimplementedGossipServer
	srv *Server
	id  uuid.UUID
}

// Read returns the one-member cluster.
func (g *gossipService) Read(context.Context, *shared.Empty) (*gossip.ClusterInfo, error) {
	host, portText, _ := net.SplitHostPort(g.srv.Addr())
	port, _ := strconv.ParseUint(portText, 10, 32)
	return &gossip.ClusterInfo{Members: []*gossip.MemberInfo{{
		InstanceId:   wireUUID(g.id, true),
		TimeStamp:    ticks(time.Now()),
		State:        gossip.MemberInfo_Leader,
		IsAlive:      true,
		HttpEndPoint: &gossip.EndPoint{Address: host, Port: uint32(port)},
	}}}, nil
}
