"""What the layer raises besides Channels' own ChannelFull and TypeError."""


class GroupsvcUnavailable(ConnectionError):
    """groupsvc could not be reached, or did not confirm: the event may not have been delivered."""


class NotDeliveredToEveryone(ConnectionError):
    """groupsvc could not see every member of the group (it restarted, or an edge was lost,
    moments ago): the event may not have reached all of them (CONFIG ``unsettled="raise"``)."""


class GroupsvcRefused(RuntimeError):
    """groupsvc refused a command; ``code`` is its grpc.StatusCode."""

    def __init__(self, code, message):
        super().__init__(f"groupsvc refused the command: {code.name}: {message}")
        self.code = code
