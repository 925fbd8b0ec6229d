package iam

import "github.com/connhost/connhost/abi"

// ManifestParams are the instance parameters the kit reads, to declare in
// a connector's manifest next to its own.
func ManifestParams() []abi.Param {
	sw := func(name, display string, def bool) abi.Param {
		return abi.Param{Name: name, Display: display, Type: abi.ParamBool, Default: def}
	}
	return []abi.Param{
		sw(ParamCreateEnabled, "Allow creating users", true),
		sw(ParamUpdateEnabled, "Allow updating users", true),
		sw(ParamDisableEnabled, "Allow disabling users", true),
		sw(ParamEnableEnabled, "Allow enabling users", true),
		sw(ParamCreateIfNotExists, "Automatically create user if not found in update command", false),
		{Name: ParamMapperOut, Display: "Outgoing mapper", Type: abi.ParamString,
			Help: `JSON object: app field path → user profile field, e.g. {"userName": "username"}. Empty uses the connector's default.`},
		{Name: ParamMapperIn, Display: "Incoming mapper", Type: abi.ParamString,
			Help: `JSON object: user profile field → app field path, e.g. {"username": "userName"}. Empty uses the connector's default.`},
	}
}

// ManifestCommands are the IAM commands, to declare in a connector's
// manifest.
func ManifestCommands() []abi.Command {
	profile := abi.Argument{Name: ArgUserProfile, Required: true,
		Description: "User profile (JSON object), e.g. {\"email\": \"jdoe@example.com\", \"username\": \"jdoe\"}."}
	allow := abi.Argument{Name: ArgAllowEnable, Options: []string{"true", "false"}, Default: "true",
		Description: "Enable the user if it is disabled (needs enable_user_enabled)."}
	return []abi.Command{
		{Name: CommandGetUser, Description: "Retrieves a user.", Arguments: []abi.Argument{profile}},
		{Name: CommandCreateUser, Description: "Creates a user; updates it when it already exists.", Arguments: []abi.Argument{profile, allow}},
		{Name: CommandUpdateUser, Description: "Updates a user; creates it when missing and create_if_not_exists is set.", Arguments: []abi.Argument{profile, allow}},
		{Name: CommandDisableUser, Description: "Disables a user.", Arguments: []abi.Argument{profile}},
		{Name: CommandEnableUser, Description: "Enables a user.", Arguments: []abi.Argument{profile}},
	}
}
