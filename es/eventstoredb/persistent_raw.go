package eventstoredb

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/persistent"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/esdriver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// createRaw creates a group with a strategy the v4 client cannot name
// (PinnedByCorrelation): the client maps strategies to an enum that lacks
// it, while the protocol also carries the strategy by name (the settings'
// consumer_strategy field), which servers since 21.10 prefer. The request
// goes over a gRPC connection of the Store's own to the node of its
// connection string, with its TLS settings and credentials; a Store from
// New has no connection string and cannot.
func (s *Store) createRaw(ctx context.Context, g Group, settings GroupSettings, cs esdb.PersistentSubscriptionSettings) error {
	if s.cfg == nil {
		return fmt.Errorf("%w: group %s: %s needs a Store from Open", es.ErrInvalidArgument, g, settings.Strategy)
	}
	req, err := rawCreateRequest(g, settings, cs)
	if err != nil {
		return err
	}
	addr := s.cfg.Address
	if addr == "" && len(s.cfg.GossipSeeds) > 0 {
		addr = net.JoinHostPort(s.cfg.GossipSeeds[0].Host, strconv.Itoa(int(s.cfg.GossipSeeds[0].Port)))
	}
	creds := insecure.NewCredentials()
	if !s.cfg.DisableTLS {
		creds = credentials.NewTLS(&tls.Config{RootCAs: s.cfg.RootCAs, InsecureSkipVerify: s.cfg.SkipCertificateVerification}) //nolint:gosec // the connection string's choice
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("%w: group %s: %w", ErrUnavailable, g, err)
	}
	defer cc.Close()
	callCtx, cancel := s.core.Bound(ctx)
	defer cancel()
	if s.cfg.Username != "" && !s.cfg.DisableTLS {
		auth := base64.StdEncoding.EncodeToString([]byte(s.cfg.Username + ":" + s.cfg.Password))
		callCtx = metadata.AppendToOutgoingContext(callCtx, "authorization", "Basic "+auth)
	}
	callCtx = metadata.AppendToOutgoingContext(callCtx, "requires-leader", "true")
	_, err = persistent.NewPersistentSubscriptionsClient(cc).Create(callCtx, req)
	if err != nil {
		if ctx.Err() == nil && callCtx.Err() != nil {
			return fmt.Errorf("%w: group %s: no answer within %v", ErrUnavailable, g, s.core.CallTimeout)
		}
		return s.mapGroupError(ctx, g, err)
	}
	return nil
}

// rawCreateRequest is the Create request the client would send, with the
// strategy by name.
func rawCreateRequest(g Group, settings GroupSettings, cs esdb.PersistentSubscriptionSettings) (*persistent.CreateReq, error) {
	opts := &persistent.CreateReq_Options{
		GroupName: g.Name,
		Settings: &persistent.CreateReq_Settings{
			ResolveLinks:       cs.ResolveLinkTos,
			ExtraStatistics:    cs.ExtraStatistics,
			MaxRetryCount:      cs.MaxRetryCount,
			MinCheckpointCount: cs.CheckpointLowerBound,
			MaxCheckpointCount: cs.CheckpointUpperBound,
			MaxSubscriberCount: cs.MaxSubscriberCount,
			LiveBufferSize:     cs.LiveBufferSize,
			ReadBatchSize:      cs.ReadBatchSize,
			HistoryBufferSize:  cs.HistoryBufferSize,
			//lint:ignore SA1019 servers before 21.10 read only the enum: Pinned is the nearest
			NamedConsumerStrategy: persistent.CreateReq_Pinned,
			MessageTimeout:        &persistent.CreateReq_Settings_MessageTimeoutMs{MessageTimeoutMs: cs.MessageTimeout},
			CheckpointAfter:       &persistent.CreateReq_Settings_CheckpointAfterMs{CheckpointAfterMs: cs.CheckpointAfter},
			ConsumerStrategy:      string(settings.Strategy),
		},
	}
	if !g.all() {
		so := &persistent.CreateReq_StreamOptions{StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(g.Stream)}}
		st := settings.Start
		switch {
		case st.end:
			so.RevisionOption = &persistent.CreateReq_StreamOptions_End{End: &shared.Empty{}}
		case st.revision != nil:
			so.RevisionOption = &persistent.CreateReq_StreamOptions_Revision{Revision: *st.revision}
		default:
			so.RevisionOption = &persistent.CreateReq_StreamOptions_Start{Start: &shared.Empty{}}
		}
		opts.StreamOption = &persistent.CreateReq_Options_Stream{Stream: so}
		return &persistent.CreateReq{Options: opts}, nil
	}
	ao := &persistent.CreateReq_AllOptions{FilterOption: &persistent.CreateReq_AllOptions_NoFilter{NoFilter: &shared.Empty{}}}
	st := settings.Start
	switch {
	case st.end:
		ao.AllOption = &persistent.CreateReq_AllOptions_End{End: &shared.Empty{}}
	case st.position != nil:
		ao.AllOption = &persistent.CreateReq_AllOptions_Position{Position: &persistent.CreateReq_Position{
			CommitPosition: st.position.Commit, PreparePosition: st.position.Prepare}}
	default:
		ao.AllOption = &persistent.CreateReq_AllOptions_Start{Start: &shared.Empty{}}
	}
	if f := settings.Filter; f != nil {
		expr := &persistent.CreateReq_AllOptions_FilterOptions_Expression{Regex: f.Regex, Prefix: f.Prefixes}
		fo := &persistent.CreateReq_AllOptions_FilterOptions{
			Window:                       &persistent.CreateReq_AllOptions_FilterOptions_Max{Max: esdriver.CheckpointInterval(f)},
			CheckpointIntervalMultiplier: 1,
		}
		if f.On == es.FilterStreamName {
			fo.Filter = &persistent.CreateReq_AllOptions_FilterOptions_StreamIdentifier{StreamIdentifier: expr}
		} else {
			fo.Filter = &persistent.CreateReq_AllOptions_FilterOptions_EventType{EventType: expr}
		}
		ao.FilterOption = &persistent.CreateReq_AllOptions_Filter{Filter: fo}
	}
	opts.StreamOption = &persistent.CreateReq_Options_All{All: ao}
	return &persistent.CreateReq{Options: opts}, nil
}
